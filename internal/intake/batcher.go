package intake

import (
	"sync"
	"time"
)

// batcher is the queue and the writers of a group commit: callers add
// items from many goroutines; each writer takes whatever has queued while
// its previous flush ran (up to maxBatch), optionally lingers for more,
// and flushes it at once. At low load a batch is one item and nothing
// waits.
type batcher[T any] struct {
	queue    chan T
	maxBatch int
	linger   time.Duration
	flush    func(batch []T)

	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

func newBatcher[T any](o BatchOptions, flush func(batch []T)) *batcher[T] {
	o = o.withDefaults()
	b := &batcher[T]{queue: make(chan T, o.Queue), maxBatch: o.MaxBatch, linger: o.Linger, flush: flush}
	for range o.Writers {
		b.wg.Add(1)
		go b.write()
	}
	return b
}

// add queues item, or refuses it at once: ErrClosed after close,
// ErrOverloaded when the queue is full.
func (b *batcher[T]) add(item T) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	select {
	case b.queue <- item:
		return nil
	default:
		return ErrOverloaded
	}
}

// close stops taking items, flushes what is queued and waits for the
// writers. It is safe to call more than once.
func (b *batcher[T]) close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.queue)
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *batcher[T]) write() {
	defer b.wg.Done()
	batch := make([]T, 0, b.maxBatch)
	for first := range b.queue {
		batch = b.fill(append(batch[:0], first))
		b.flush(batch)
		clear(batch)
	}
}

// fill adds to batch whatever is already queued and, with a linger, what
// arrives within it.
func (b *batcher[T]) fill(batch []T) []T {
	var deadline <-chan time.Time
	if b.linger > 0 {
		t := time.NewTimer(b.linger)
		defer t.Stop()
		deadline = t.C
	}
	for len(batch) < b.maxBatch {
		if deadline == nil {
			select {
			case item, ok := <-b.queue:
				if !ok {
					return batch
				}
				batch = append(batch, item)
				continue
			default:
				return batch
			}
		}
		select {
		case item, ok := <-b.queue:
			if !ok {
				return batch
			}
			batch = append(batch, item)
		case <-deadline:
			return batch
		}
	}
	return batch
}
