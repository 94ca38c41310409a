package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// healthBucket is the key-value bucket of the health board: one key per
// process, holding the last snapshot it posted.
const healthBucket = "PROCESS_HEALTH"

// ErrBoardUnreachable: the health board cannot be read now (the broker is
// away, or the board was closed); what it holds may be stale.
var ErrBoardUnreachable = errors.New("health board unreachable")

// BoardEntry is one process's last snapshot on the board.
type BoardEntry struct {
	// Key names the process that posted it.
	Key string
	// Value is the snapshot, opaque to the bus.
	Value []byte
	// At is when the broker stored it (the broker's clock).
	At time.Time
	// seen is when this reader learnt of it (its own clock): the entry's
	// age is read from it, so that the broker's and the reader's clocks
	// need not agree. An entry that was on the board when the reader
	// opened it has no better time than At.
	seen time.Time
	rev  uint64
}

// HealthBoard is where the processes of a deployment post how they see
// something only they can see (the insurance role: its clients' breakers
// and latencies) for the other processes to read (the API's
// GET /v1/insurers). It is a key-value bucket on the broker, which every
// process that could post or read is connected to: each process posts
// under its own key, the bucket forgets a value HealthTTL after it was
// stored, and the readers ignore what is older than that, so a process
// that was killed drops off the board on its own.
//
// Reads are served from memory: the board follows the bucket from Open
// to Close, so All costs nothing on the broker however often the panel
// polls. Safe for concurrent use.
type HealthBoard struct {
	kv  jetstream.KeyValue
	nc  *nats.Conn
	ttl time.Duration

	// rewatch asks the follower to watch the bucket again: after a
	// reconnect, the watch of a restarted broker delivers nothing more.
	rewatch chan struct{}
	cancel  context.CancelFunc
	stopped chan struct{} // closed when the follower has ended

	mu      sync.Mutex
	now     func() time.Time
	entries map[string]BoardEntry
}

// healthBucketConfig is the board's bucket as EnsureStreams declares it.
// Only the last value per key matters, and losing the bucket with the
// broker costs one posting interval: each process posts again.
func (b *Bus) healthBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      healthBucket,
		Description: "the last health snapshot of each process (insurer clients' breakers), forgotten after a while",
		TTL:         b.cfg.HealthTTL,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
	}
}

// HealthTTL is how long the board keeps a process's last snapshot: a
// process posts more often than that while it lives (HealthTTL/5 is a
// good interval), so an entry older than HealthTTL is a process that died
// without taking its entry down.
func (b *Bus) HealthTTL() time.Duration { return b.cfg.HealthTTL }

// OpenHealthBoard binds the board's bucket (EnsureStreams declares it)
// and starts following it; it returns once the entries already there are
// read, so the first All sees them. Close stops the following.
func (b *Bus) OpenHealthBoard(ctx context.Context) (*HealthBoard, error) {
	kv, err := b.js.KeyValue(ctx, healthBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s (run EnsureStreams first): %w", healthBucket, err)
	}
	// The watch lives until Close, not as long as the ctx of Open.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("follow bucket %s: %w", healthBucket, err)
	}
	h := &HealthBoard{kv: kv, nc: b.nc, ttl: b.cfg.HealthTTL, rewatch: make(chan struct{}, 1), cancel: cancel,
		stopped: make(chan struct{}), now: time.Now, entries: map[string]BoardEntry{}}
	b.OnReconnect(func() {
		select {
		case h.rewatch <- struct{}{}:
		default:
		}
	})
	loaded := make(chan struct{})
	go h.follow(wctx, w, loaded)
	select {
	case <-loaded:
		return h, nil
	case <-ctx.Done():
		h.Close()
		return nil, fmt.Errorf("follow bucket %s: %w", healthBucket, ctx.Err())
	}
}

// follow keeps the entries up to date until ctx ends: it applies what the
// watch w delivers, and watches again after a reconnect or when the watch
// ends. loaded is closed once the first watch's initial values are in.
func (h *HealthBoard) follow(ctx context.Context, w jetstream.KeyWatcher, loaded chan struct{}) {
	defer close(h.stopped)
	for {
		h.apply(ctx, w, loaded)
		_ = w.Stop()
		loaded = nil
		for {
			if ctx.Err() != nil {
				return
			}
			var err error
			if w, err = h.kv.WatchAll(ctx); err == nil {
				break
			}
			select { // the broker away: try again when it is back
			case <-ctx.Done():
			case <-h.rewatch:
			case <-time.After(time.Second):
			}
		}
	}
}

// apply applies one watch's updates to the entries until ctx ends, a
// rewatch is asked for, or the watch ends. Its initial values replace the
// entries as a whole, so that what was deleted while the watch was lost
// goes too.
func (h *HealthBoard) apply(ctx context.Context, w jetstream.KeyWatcher, loaded chan struct{}) {
	fresh := map[string]BoardEntry{}
	initial := true
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return
		case <-h.rewatch:
			return
		case e, ok = <-w.Updates():
		}
		if !ok {
			return
		}
		h.mu.Lock()
		switch {
		case e == nil && initial: // the initial values are all in
			h.entries, initial = fresh, false
			if loaded != nil {
				close(loaded)
				loaded = nil
			}
		case e == nil:
		case e.Operation() == jetstream.KeyValuePut:
			into := h.entries
			if initial {
				into = fresh
			}
			into[e.Key()] = h.entry(e, initial)
		case initial:
			delete(fresh, e.Key())
		default:
			delete(h.entries, e.Key())
		}
		h.mu.Unlock()
	}
}

// entry is the board's entry for a put the watch delivered; h.mu is held.
func (h *HealthBoard) entry(e jetstream.KeyValueEntry, initial bool) BoardEntry {
	seen := h.now()
	if initial {
		if old, ok := h.entries[e.Key()]; ok && old.rev == e.Revision() {
			// Delivered again by a new watch: heard of when it was first.
			return old
		}
		if e.Created().Before(seen) {
			// Stored before this reader came: only the broker knows when.
			seen = e.Created()
		}
	}
	return BoardEntry{Key: e.Key(), Value: e.Value(), At: e.Created(), seen: seen, rev: e.Revision()}
}

// Put posts value as the current snapshot of the process key names. A
// key is letters, digits and - _ = / . (no spaces or wildcards).
func (h *HealthBoard) Put(ctx context.Context, key string, value []byte) error {
	if _, err := h.kv.Put(ctx, key, value); err != nil {
		return fmt.Errorf("post %s to the health board: %w", key, err)
	}
	return nil
}

// Delete takes the process's entry down, for a process that stops
// cleanly; one that does not is forgotten after HealthTTL.
func (h *HealthBoard) Delete(ctx context.Context, key string) error {
	if err := h.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("remove %s from the health board: %w", key, err)
	}
	return nil
}

// All returns the entries heard of less than HealthTTL ago, by key, or
// ErrBoardUnreachable when the reader is not connected to the broker now
// (its entries would be stale, and it would not hear of new ones).
func (h *HealthBoard) All() ([]BoardEntry, error) {
	select {
	case <-h.stopped:
		return nil, fmt.Errorf("%w: closed", ErrBoardUnreachable)
	default:
	}
	if st := h.nc.Status(); st != nats.CONNECTED {
		return nil, fmt.Errorf("%w: broker connection %s", ErrBoardUnreachable, strings.ToLower(st.String()))
	}
	h.mu.Lock()
	now := h.now()
	out := make([]BoardEntry, 0, len(h.entries))
	for _, e := range h.entries {
		// The broker removes the value at HealthTTL but tells no watcher;
		// reading its age here is what makes a dead process drop off.
		if now.Sub(e.seen) < h.ttl {
			out = append(out, e)
		}
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(a, b BoardEntry) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Close stops following the bucket. It is idempotent.
func (h *HealthBoard) Close() {
	h.cancel()
	<-h.stopped
}
