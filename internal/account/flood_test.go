package account

import (
	"context"
	"errors"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/identity"
)

// heapSampler follows the heap while a test runs: the bytes in heap
// objects (live or not yet swept) and what the process holds from the OS
// for the heap (mapped and not released), sampled every millisecond.
type heapSampler struct {
	stop chan struct{}
	done chan struct{}
	peak uint64
}

func readHeap() (objects, retained uint64) {
	s := []rtmetrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	rtmetrics.Read(s)
	objects = s[0].Value.Uint64()
	return objects, objects + s[1].Value.Uint64() + s[2].Value.Uint64()
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if objects, _ := readHeap(); objects > h.peak {
				h.peak = objects
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	<-h.done
	return h.peak
}

// 200 logins at once with the real argon2id parameters (19 MiB each)
// keep the heap within the hashing slots' worth, refuse what does not fit
// with ErrBusy, and hand the memory back when the burst is over. Without
// the bound, the same flood held 200 hashes' memory at once (3.8 GiB).
func TestLoginFloodKeepsMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 200 real passwords")
	}
	hasher := DefaultHasher()
	released := make(chan struct{}, 16)
	store := newMemStore()
	svc, err := NewService(store, hasher, WithHashLimit(0, 2*time.Second),
		WithMemoryRelease(func() { debug.FreeOSMemory(); released <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateUser(context.Background(), rootCLI, NewUser{Username: "ayse", Password: "ayse-password", Role: identity.Customer}); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	base, _ := readHeap()
	slots := svc.HashSlots()
	perHash := uint64(hasher.Memory) << 10

	h := sampleHeap()
	const logins = 200
	var wg sync.WaitGroup
	start := make(chan struct{})
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i := range logins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// Every address is its own: the per-address budgets play no part.
			_, err := svc.Login(context.Background(), LoginAttempt{Username: "ayse", Password: "ayse-password", Address: "198.51.100." + itoa3(i)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				outcomes["ok"]++
			case errors.Is(err, ErrBusy):
				outcomes["busy"]++
			default:
				outcomes[err.Error()]++
			}
		}()
	}
	close(start)
	wg.Wait()
	peak := h.Stop()
	if outcomes["ok"]+outcomes["busy"] != logins || outcomes["ok"] < slots {
		t.Fatalf("outcomes %v", outcomes)
	}
	// Live memory is at most the slots' hashes; with the garbage the Go
	// heap may hold until it collects (GOGC=100: as much again), and room
	// for the rest of the process, that is well under 3x.
	bound := base + uint64(3*slots)*perHash + 32<<20
	t.Logf("%d slots; %v; heap peak %d MiB (base %d MiB, bound %d MiB)", slots, outcomes, peak>>20, base>>20, bound>>20)
	if peak > bound {
		t.Errorf("heap peaked at %d MiB, bound %d MiB", peak>>20, bound>>20)
	}
	// When the burst is over the memory goes back to the OS: the heap
	// does not sit on its high-water mark.
	select {
	case <-released:
	case <-time.After(30 * time.Second):
		t.Fatal("memory not handed back after the burst")
	}
	if _, retained := readHeap(); retained > base+2*perHash+32<<20 {
		t.Errorf("after the burst the heap still holds %d MiB from the OS (base %d MiB)", retained>>20, base>>20)
	}
}
