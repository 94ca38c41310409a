package account

import (
	"strconv"
	"sync"
	"time"
)

// Failed logins slow further attempts down, per account, without ever
// locking the account: a hard lockout would let anyone lock anyone out.
// Two budgets apply:
//
//   - per account and address: PairFree failures, then the address waits
//     Base, 2*Base, 4*Base, ... up to PairMax before its next try at that
//     account. A guesser at one address gets a few dozen tries a day.
//   - per account, from every address together: AccountFree failures, then
//     waits up to AccountMax only. A distributed guesser gets about one
//     try per AccountMax; the owner, logging in from a fresh address
//     during such a flood, waits at most AccountMax.
//
// An address the account logged in from successfully within Remember skips
// the account-wide budget (its own pair budget still applies), so the
// owner's usual device is not slowed by a flood from elsewhere. A correct
// password resets both budgets. Only checked attempts count: one refused
// for waiting neither counts nor extends the wait, so a flood cannot keep
// the account closed beyond AccountMax.
//
// The state is in memory, per process: with several API processes each
// keeps its own budgets (a guesser spread over them gets that many times
// the tries). It is bounded by MaxEntries; past it the stalest entries go.

// BackoffRules are the failed-login budgets.
type BackoffRules struct {
	PairFree, AccountFree int
	Base                  time.Duration
	PairMax, AccountMax   time.Duration
	// Forget is how long a failure is remembered; Remember how long an
	// address the account logged in from is.
	Forget, Remember time.Duration
	MaxEntries       int
}

// DefaultBackoff: five free failures per address, twenty per account.
var DefaultBackoff = BackoffRules{
	PairFree: 5, AccountFree: 20, Base: time.Second,
	PairMax: 15 * time.Minute, AccountMax: time.Minute,
	Forget: 6 * time.Hour, Remember: 30 * 24 * time.Hour, MaxEntries: 100_000,
}

// ThrottledError is ErrThrottled with the wait.
type ThrottledError struct {
	RetryAfter time.Duration
	// Scope says which budget ran out: "address" or "account".
	Scope string
}

func (e *ThrottledError) Error() string {
	return "login throttled (" + e.Scope + "): retry after " + e.RetryAfter.Round(time.Second).String()
}

// Is makes errors.Is(err, ErrThrottled) hold.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

type budget struct {
	failures int
	last     time.Time // last failure, or last success for a good address
	until    time.Time // no attempt before this
	keep     time.Duration
}

type backoff struct {
	rules   BackoffRules
	mu      sync.Mutex
	entries map[string]*budget
}

func newBackoff(r BackoffRules) *backoff {
	return &backoff{rules: r, entries: map[string]*budget{}}
}

func pairKey(account, address string) string { return "p\x00" + account + "\x00" + address }
func accountKey(account string) string       { return "a\x00" + account }
func goodKey(account, address string) string { return "g\x00" + account + "\x00" + address }

// check says how long (account, address) must wait before a try; 0 means
// now.
func (b *backoff) check(account, address string, now time.Time) *ThrottledError {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.live(pairKey(account, address), now); e != nil && now.Before(e.until) {
		return &ThrottledError{RetryAfter: e.until.Sub(now), Scope: "address"}
	}
	if b.live(goodKey(account, address), now) != nil {
		return nil
	}
	if e := b.live(accountKey(account), now); e != nil && now.Before(e.until) {
		return &ThrottledError{RetryAfter: e.until.Sub(now), Scope: "account"}
	}
	return nil
}

// failure records a checked failure and returns the wait it starts (0
// while the free failures last).
func (b *backoff) failure(account, address string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rules
	wait := b.bump(pairKey(account, address), now, r.PairFree, r.PairMax)
	if b.live(goodKey(account, address), now) == nil {
		wait = max(wait, b.bump(accountKey(account), now, r.AccountFree, r.AccountMax))
	}
	return wait
}

// success forgets the account's failures and remembers the address.
func (b *backoff) success(account, address string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.entries, pairKey(account, address))
	delete(b.entries, accountKey(account))
	b.put(goodKey(account, address), &budget{last: now, keep: b.rules.Remember}, now)
}

// live returns the entry under key unless it is forgotten.
func (b *backoff) live(key string, now time.Time) *budget {
	e := b.entries[key]
	if e != nil && b.stale(e, now) {
		delete(b.entries, key)
		return nil
	}
	return e
}

func (b *backoff) bump(key string, now time.Time, free int, ceiling time.Duration) time.Duration {
	e := b.live(key, now)
	if e == nil {
		e = &budget{keep: b.rules.Forget}
		b.put(key, e, now)
	}
	e.failures++
	e.last = now
	over := e.failures - free
	if over <= 0 {
		return 0
	}
	wait := ceiling
	if over <= 30 && b.rules.Base<<(over-1) < ceiling {
		wait = b.rules.Base << (over - 1)
	}
	e.until = now.Add(wait)
	return wait
}

// put stores e, first making room: forgotten entries go, then (under a
// flood of made-up names) arbitrary ones.
func (b *backoff) put(key string, e *budget, now time.Time) {
	if len(b.entries) >= b.rules.MaxEntries {
		for k, old := range b.entries {
			if b.stale(old, now) {
				delete(b.entries, k)
			}
		}
		for k := range b.entries {
			if len(b.entries) < b.rules.MaxEntries*9/10 {
				break
			}
			delete(b.entries, k)
		}
	}
	b.entries[key] = e
}

func (b *backoff) stale(e *budget, now time.Time) bool { return now.Sub(e.last) > e.keep }

// seconds renders a wait for an audit detail.
func seconds(d time.Duration) string { return strconv.Itoa(int((d+time.Second-1)/time.Second)) + "s" }
