package bus

import (
	"slices"
	"testing"
	"time"
)

func openBoard(t *testing.T, b *Bus) *HealthBoard {
	t.Helper()
	h, err := b.OpenHealthBoard(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func boardKeys(h *HealthBoard) []string {
	var keys []string
	for _, e := range h.All() {
		keys = append(keys, e.Key)
	}
	return keys
}

// Two processes on one broker: what one posts, the other reads, whether
// its board was open before (it follows) or opened after (it loads); a
// process that stops cleanly takes its entry down.
func TestHealthBoardAcrossProcesses(t *testing.T) {
	srv := startExternal(t, -1, t.TempDir())
	a := connect(t, Config{URL: srv.ClientURL()})
	b := connect(t, Config{URL: srv.ClientURL()})
	reader := openBoard(t, b.bus)
	poster := openBoard(t, a.bus)

	if err := poster.Put(t.Context(), "host-1-aaaa", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := poster.Put(t.Context(), "host-2-bbbb", []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the reader to see both entries", func() bool {
		return slices.Equal(boardKeys(reader), []string{"host-1-aaaa", "host-2-bbbb"})
	})
	if err := poster.Put(t.Context(), "host-1-aaaa", []byte(`{"n":3}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the reader to see the newer snapshot", func() bool {
		all := reader.All()
		return len(all) == 2 && string(all[0].Value) == `{"n":3}`
	})
	if at := reader.All()[0].At; time.Since(at) > time.Minute || time.Until(at) > time.Minute {
		t.Errorf("entry stored at %v: not the broker's time of the put", at)
	}

	late := openBoard(t, b.bus)
	if got := boardKeys(late); !slices.Equal(got, []string{"host-1-aaaa", "host-2-bbbb"}) {
		t.Errorf("a board opened later has %v at once, want both entries", got)
	}

	if err := poster.Delete(t.Context(), "host-2-bbbb"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the deleted entry to go", func() bool {
		return slices.Equal(boardKeys(reader), []string{"host-1-aaaa"})
	})
	if err := poster.Delete(t.Context(), "never-posted"); err != nil {
		t.Errorf("deleting a key never posted: %v", err)
	}
}

// An entry not posted again within HealthTTL is no longer on the board,
// even before the broker removes it (which it tells no reader), and the
// bucket itself forgets values after HealthTTL.
func TestHealthBoardForgetsSilentProcesses(t *testing.T) {
	forEachMode(t, func(t *testing.T, f fixture) {
		h := openBoard(t, f.bus)
		if err := h.Put(t.Context(), "dead", []byte("x")); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the entry", func() bool { return len(h.All()) == 1 })
		at := h.All()[0].At
		h.mu.Lock()
		h.now = func() time.Time { return at.Add(HealthTTL - time.Millisecond) }
		h.mu.Unlock()
		if len(h.All()) != 1 {
			t.Error("an entry younger than HealthTTL is gone")
		}
		h.mu.Lock()
		h.now = func() time.Time { return at.Add(HealthTTL) }
		h.mu.Unlock()
		if got := h.All(); len(got) != 0 {
			t.Errorf("an entry HealthTTL old is still on the board: %v", got)
		}

		st, err := h.kv.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.TTL() != HealthTTL || st.History() != 1 {
			t.Errorf("bucket keeps values %v with history %d, want %v and 1", st.TTL(), st.History(), HealthTTL)
		}
	})
}

func TestHealthBoardRefusesBadKeys(t *testing.T) {
	forEachMode(t, func(t *testing.T, f fixture) {
		h := openBoard(t, f.bus)
		if err := h.Put(t.Context(), "a b*", []byte("x")); err == nil {
			t.Error("a key with a space and a wildcard was posted")
		}
		if len(h.All()) != 0 {
			t.Error("the refused post is on the board")
		}
	})
}
