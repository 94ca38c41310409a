package insurance

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Defaults of an insurer's settings, applied by Config.Default (and so by
// the insurers file) to whatever is left out.
const (
	DefaultAdapter        = "rest"
	DefaultTimeout        = 2 * time.Second
	DefaultAttempts       = 3
	DefaultBaseDelay      = 100 * time.Millisecond
	DefaultMaxDelay       = 2 * time.Second
	DefaultRetryBudget    = 0.2
	DefaultFailures       = 5
	DefaultOpenFor        = 30 * time.Second
	DefaultHalfOpenProbes = 1
	DefaultBulkhead       = 16
	DefaultPatience       = 10 * time.Minute
	// DefaultArrivalSLAMinutes is the arrival time an insurer contracts
	// for when the file says nothing; the SLA report measures against it.
	DefaultArrivalSLAMinutes = 45
)

// Config is one insurer, as configured in the insurers file
// (YOLDA_INSURERS_FILE). Build it with configfile.LoadFile, or in code with
// Default then Validate.
type Config struct {
	// Code is the insurer's key in requests ("policy.insurer") and in
	// metrics: lower-case letters, digits, '_' and '-'.
	Code string
	// Name is for people (the panel); defaults to Code.
	Name string
	// Adapter names the Factory that speaks this insurer's protocol.
	Adapter string
	// BaseURL is where the insurer's API lives (http or https).
	BaseURL string
	// Timeout bounds one attempt (one HTTP call), not the whole Verify.
	Timeout time.Duration
	// Auth, if Header is set, is sent with every call.
	Auth    Auth
	Retry   Retry
	Breaker Breaker
	// Bulkhead is the most calls to this insurer in flight at once; more
	// fail at once with ErrBulkheadFull.
	Bulkhead int
	// Patience is how long a check may stay pending (insurer unreachable)
	// before the request goes to manual_review. Used by the worker.
	Patience time.Duration
	// VerifyBeforeDispatch: dispatch waits for cover (true) or starts at
	// once while the check runs (false). Used by intake and the worker.
	VerifyBeforeDispatch bool
	// ArrivalSLAMinutes is the time from request to the driver's arrival
	// the insurer contracted for; the SLA report counts arrivals within
	// it. Used by the warehouse only.
	ArrivalSLAMinutes int
}

// Auth is how a call proves who Yolda is: Header: "Scheme Value", or
// Header: "Value" without a scheme.
type Auth struct {
	Header string // e.g. "Authorization", "X-Api-Key"
	Scheme string // e.g. "Bearer"; optional
	// ValueEnv names the environment variable holding the secret; the
	// file never holds the secret itself.
	ValueEnv string
	// Value is the secret, read from ValueEnv by the insurers file.
	Value Secret
}

// Retry governs retries inside one Verify.
type Retry struct {
	// Attempts is the most tries, the first included (1: never retry).
	Attempts int
	// BaseDelay and MaxDelay bound the backoff: before retry n (0-based) the
	// client sleeps a uniformly random time in [0, min(MaxDelay, BaseDelay*2^n)].
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// Budget is the fraction of calls that may be retried, over a sliding
	// window of 10s (plus a floor of 10 retries per window, so a quiet
	// insurer can still retry): under a total outage the insurer sees at
	// most (1+Budget) times the calls, never Attempts times.
	Budget float64
}

// Breaker governs the insurer's circuit breaker.
type Breaker struct {
	// Failures is how many consecutive failed Verify calls open the
	// breaker. Failures are infrastructure failures only: timeouts,
	// unreachable, 5xx, bad payloads (and errors an adapter leaves
	// unclassified). "Not covered" and 4xx are successes; calls the caller
	// abandoned do not count.
	Failures int
	// OpenFor is how long the breaker stays open before letting probes
	// through (half-open).
	OpenFor time.Duration
	// HalfOpenProbes is how many calls may probe a half-open breaker; that
	// many successes in a row close it, one failure opens it again.
	HalfOpenProbes int
}

// CheckBudget is the longest one check can take: every attempt's timeout
// and the back-off between them, and a margin. A consumer of the
// insurer's checks gives each delivery that long (its AckWait).
func (c Config) CheckBudget() time.Duration {
	return time.Duration(c.Retry.Attempts)*(c.Timeout+c.Retry.MaxDelay) + 10*time.Second
}

// Default fills every zero setting with its default and returns c.
func (c Config) Default() Config {
	def := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	defInt := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	if c.Name == "" {
		c.Name = c.Code
	}
	if c.Adapter == "" {
		c.Adapter = DefaultAdapter
	}
	def(&c.Timeout, DefaultTimeout)
	defInt(&c.Retry.Attempts, DefaultAttempts)
	def(&c.Retry.BaseDelay, DefaultBaseDelay)
	def(&c.Retry.MaxDelay, DefaultMaxDelay)
	if c.Retry.Budget == 0 {
		c.Retry.Budget = DefaultRetryBudget
	}
	defInt(&c.Breaker.Failures, DefaultFailures)
	def(&c.Breaker.OpenFor, DefaultOpenFor)
	defInt(&c.Breaker.HalfOpenProbes, DefaultHalfOpenProbes)
	defInt(&c.Bulkhead, DefaultBulkhead)
	def(&c.Patience, DefaultPatience)
	defInt(&c.ArrivalSLAMinutes, DefaultArrivalSLAMinutes)
	return c
}

var (
	codeRE   = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
	tokenRE  = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$") // RFC 9110 token
	envVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// Validate reports every invalid setting of c, one per line, each naming the
// insurer and the field as written in the insurers file.
func (c Config) Validate() error {
	name := c.Code
	if name == "" {
		name = "(no code)"
	}
	errs := c.Problems()
	for i, err := range errs {
		errs[i] = fmt.Errorf("insurer %s: %w", name, err)
	}
	return errors.Join(errs...)
}

// Problems lists c's invalid settings, each as "field: what is wrong" with
// the field named as in the insurers file.
func (c Config) Problems() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	positive := func(field string, d, limit time.Duration) {
		if d <= 0 || d > limit {
			bad(field, "must be in (0, %s], got %s", limit, d)
		}
	}

	if !codeRE.MatchString(c.Code) {
		bad("code", "must be 1-64 of a-z, 0-9, '_', '-', got %q", c.Code)
	}
	if c.Name == "" || len(c.Name) > 200 {
		bad("name", "must be 1-200 bytes, got %d", len(c.Name))
	}
	if !codeRE.MatchString(c.Adapter) {
		bad("adapter", "must be 1-64 of a-z, 0-9, '_', '-', got %q", c.Adapter)
	}
	if u, err := url.Parse(c.BaseURL); c.BaseURL == "" {
		bad("base_url", "is required")
	} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("base_url", "must be an absolute http(s) URL, got %q", c.BaseURL)
	} else if u.User != nil {
		bad("base_url", "must not hold credentials (use auth.value_env)")
	} else if u.RawQuery != "" || u.Fragment != "" {
		bad("base_url", "must not have a query or fragment, got %q", c.BaseURL)
	}
	positive("timeout", c.Timeout, 5*time.Minute)

	a := c.Auth
	switch {
	case a.Header == "" && (a.Scheme != "" || a.ValueEnv != "" || a.Value.v != ""):
		bad("auth.header", "is required when auth is set")
	case a.Header != "":
		if !tokenRE.MatchString(a.Header) {
			bad("auth.header", "must be an HTTP header name, got %q", a.Header)
		}
		if a.Scheme != "" && !tokenRE.MatchString(a.Scheme) {
			bad("auth.scheme", "must be a single word like Bearer, got %q", a.Scheme)
		}
		if a.ValueEnv != "" && !envVarRE.MatchString(a.ValueEnv) {
			bad("auth.value_env", "must be an environment variable name, got %q", a.ValueEnv)
		}
		switch {
		case a.ValueEnv == "" && a.Value.v == "":
			bad("auth.value_env", "is required when auth is set")
		case a.Value.v == "":
			bad("auth.value_env", "environment variable %s is not set or empty", a.ValueEnv)
		case strings.ContainsAny(a.Value.v, "\r\n\x00"):
			bad("auth.value_env", "environment variable %s holds a line break or NUL", a.ValueEnv)
		}
	}

	r := c.Retry
	if r.Attempts < 1 || r.Attempts > 10 {
		bad("retry.attempts", "must be in [1, 10], got %d", r.Attempts)
	}
	positive("retry.base_delay", r.BaseDelay, time.Minute)
	positive("retry.max_delay", r.MaxDelay, 5*time.Minute)
	if r.MaxDelay < r.BaseDelay {
		bad("retry.max_delay", "must be >= retry.base_delay (%s), got %s", r.BaseDelay, r.MaxDelay)
	}
	if !(r.Budget > 0 && r.Budget <= 1) { // also rejects NaN
		bad("retry.budget", "must be in (0, 1], got %v (use retry.attempts: 1 for no retries)", r.Budget)
	}

	b := c.Breaker
	if b.Failures < 1 || b.Failures > 10000 {
		bad("breaker.failures", "must be in [1, 10000], got %d", b.Failures)
	}
	positive("breaker.open_for", b.OpenFor, 24*time.Hour)
	if b.HalfOpenProbes < 1 || b.HalfOpenProbes > 1000 {
		bad("breaker.half_open_probes", "must be in [1, 1000], got %d", b.HalfOpenProbes)
	}
	if c.Bulkhead < 1 || c.Bulkhead > 10000 {
		bad("bulkhead", "must be in [1, 10000], got %d", c.Bulkhead)
	}
	positive("patience", c.Patience, 7*24*time.Hour)
	if c.ArrivalSLAMinutes < 1 || c.ArrivalSLAMinutes > 24*60 {
		bad("arrival_sla_minutes", "must be in [1, 1440], got %d", c.ArrivalSLAMinutes)
	}

	return errs
}

// String is a one-line dump for logs, the secret masked.
func (c Config) String() string {
	auth := "none"
	if c.Auth.Header != "" {
		auth = c.Auth.Header + ": "
		if c.Auth.Scheme != "" {
			auth += c.Auth.Scheme + " "
		}
		auth += c.Auth.Value.String() + " (from $" + c.Auth.ValueEnv + ")"
	}
	return fmt.Sprintf("insurer %s (%q) adapter=%s base_url=%s timeout=%s auth=[%s] "+
		"retry=[attempts=%d base_delay=%s max_delay=%s budget=%v] "+
		"breaker=[failures=%d open_for=%s half_open_probes=%d] bulkhead=%d patience=%s verify_before_dispatch=%t arrival_sla_minutes=%d",
		c.Code, c.Name, c.Adapter, c.BaseURL, c.Timeout, auth,
		c.Retry.Attempts, c.Retry.BaseDelay, c.Retry.MaxDelay, c.Retry.Budget,
		c.Breaker.Failures, c.Breaker.OpenFor, c.Breaker.HalfOpenProbes,
		c.Bulkhead, c.Patience, c.VerifyBeforeDispatch, c.ArrivalSLAMinutes)
}

// LogValue logs c as its masked one-line dump.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Secret is a credential that does not print: fmt, slog, JSON and YAML all
// see "***". Reveal returns it for the one place that sends it.
type Secret struct{ v string }

// NewSecret wraps v.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the secret itself. Only an adapter setting a header calls it.
func (s Secret) Reveal() string { return s.v }

func (s Secret) mask() string {
	if s.v == "" {
		return ""
	}
	return "***"
}

func (s Secret) String() string               { return s.mask() }
func (s Secret) GoString() string             { return `insurance.Secret("` + s.mask() + `")` }
func (s Secret) Format(f fmt.State, _ rune)   { io.WriteString(f, s.mask()) } //nolint:errcheck
func (s Secret) LogValue() slog.Value         { return slog.StringValue(s.mask()) }
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.mask()), nil }
func (s Secret) MarshalYAML() (any, error)    { return s.mask(), nil }
