// Package cache is the contract of Yolda's hot-read cache: versioned
// entries that a stale fill cannot overwrite, tombstones that refuse the
// fills an invalidation made stale, and entries scoped to a generation for
// lists. Backends: memory (one process) and redis (every process). What is
// cached, and when it is invalidated, is internal/hotread's business.
//
// The rules, which the conformance suite (cachetest) holds every backend
// to:
//
//   - Fill(key, e) stores e unless the key holds a newer version (an
//     entry or a tombstone): a reader that read the database before a
//     change cannot hide the change by filling late.
//   - Invalidate(key, v) removes an entry older than v and leaves a
//     tombstone at v for the ttl: fills older than v are refused, fills at
//     v or newer are taken. An entry at v or newer stays.
//   - A scoped entry is valid while its scope's generation is the one it
//     was filled at; Bump moves the generation on, and a fill at an old
//     generation is refused.
package cache

import (
	"context"
	"errors"
	"time"
)

// ErrUnavailable wraps what a shared backend answers when its server does
// not: callers then read the database.
var ErrUnavailable = errors.New("cache unavailable")

// Entry is a cached value and the version of the state it shows.
type Entry struct {
	Value   []byte
	Version int64
}

// Cache is the port.
type Cache interface {
	// Get returns the key's entry; a tombstone or nothing is a miss.
	Get(ctx context.Context, key string) (Entry, bool, error)
	// Fill stores e for ttl unless the key holds a newer version.
	Fill(ctx context.Context, key string, e Entry, ttl time.Duration) error
	// Invalidate removes what is older than version and refuses fills
	// older than it for ttl.
	Invalidate(ctx context.Context, key string, version int64, ttl time.Duration) error

	// GetScoped returns the scope's generation and, if it was filled at
	// that generation, the key's value.
	GetScoped(ctx context.Context, scope, key string) (value []byte, gen int64, ok bool, err error)
	// FillScoped stores value for ttl if gen is still the scope's
	// generation.
	FillScoped(ctx context.Context, scope, key string, gen int64, value []byte, ttl time.Duration) error
	// Bump moves the scope's generation on: every entry of the scope is
	// stale.
	Bump(ctx context.Context, scope string) error
}
