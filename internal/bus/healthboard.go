package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// healthBucket is the key-value bucket of the health board: one key per
// process, holding the last snapshot it posted.
const healthBucket = "PROCESS_HEALTH"

// HealthTTL is how long the board keeps a process's last snapshot: a
// process posts more often than that while it lives (the insurance role
// every 2 s), so an entry older than HealthTTL is a process that died
// without taking its entry down.
const HealthTTL = 10 * time.Second

// BoardEntry is one process's last snapshot on the board.
type BoardEntry struct {
	// Key names the process that posted it.
	Key string
	// Value is the snapshot, opaque to the bus.
	Value []byte
	// At is when the broker stored it (the broker's clock).
	At time.Time
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
	now func() time.Time

	watcher jetstream.KeyWatcher
	stopped chan struct{} // closed when the follower has ended

	mu      sync.Mutex
	entries map[string]BoardEntry
}

// healthBucketConfig is the board's bucket as EnsureStreams declares it.
// Only the last value per key matters, and losing the bucket with the
// broker costs one posting interval: each process posts again.
func (b *Bus) healthBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      healthBucket,
		Description: "the last health snapshot of each process (insurer clients' breakers), forgotten after a while",
		TTL:         HealthTTL,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
	}
}

// OpenHealthBoard binds the board's bucket (EnsureStreams declares it)
// and starts following it; it returns once the entries already there are
// read, so the first All sees them. Close stops the following.
func (b *Bus) OpenHealthBoard(ctx context.Context) (*HealthBoard, error) {
	kv, err := b.js.KeyValue(ctx, healthBucket)
	if err != nil {
		return nil, fmt.Errorf("open bucket %s (run EnsureStreams first): %w", healthBucket, err)
	}
	// The watch lives until Close, not as long as the ctx of Open.
	w, err := kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("follow bucket %s: %w", healthBucket, err)
	}
	h := &HealthBoard{kv: kv, now: time.Now, watcher: w, stopped: make(chan struct{}), entries: map[string]BoardEntry{}}
	loaded := make(chan struct{})
	go h.follow(loaded)
	select {
	case <-loaded:
		return h, nil
	case <-h.stopped:
		return nil, fmt.Errorf("follow bucket %s: %w", healthBucket, ErrClosed)
	case <-ctx.Done():
		h.Close()
		return nil, fmt.Errorf("follow bucket %s: %w", healthBucket, ctx.Err())
	}
}

// follow applies the bucket's changes to the entries until the watch
// stops; loaded is closed once the initial values are in.
func (h *HealthBoard) follow(loaded chan struct{}) {
	defer close(h.stopped)
	for e := range h.watcher.Updates() {
		if e == nil { // the initial values are all in
			if loaded != nil {
				close(loaded)
				loaded = nil
			}
			continue
		}
		h.mu.Lock()
		if e.Operation() == jetstream.KeyValuePut {
			h.entries[e.Key()] = BoardEntry{Key: e.Key(), Value: e.Value(), At: e.Created()}
		} else {
			delete(h.entries, e.Key())
		}
		h.mu.Unlock()
	}
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

// All returns the entries stored less than HealthTTL ago, by key.
func (h *HealthBoard) All() []BoardEntry {
	h.mu.Lock()
	now := h.now()
	out := make([]BoardEntry, 0, len(h.entries))
	for _, e := range h.entries {
		// The broker removes the value at HealthTTL but tells no watcher;
		// reading its age here is what makes a dead process drop off.
		if now.Sub(e.At) < HealthTTL {
			out = append(out, e)
		}
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(a, b BoardEntry) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Close stops following the bucket. It is idempotent.
func (h *HealthBoard) Close() {
	_ = h.watcher.Stop()
	<-h.stopped
}
