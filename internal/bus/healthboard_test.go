package bus

import (
	"errors"
	"net"
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

func boardEntries(t *testing.T, h *HealthBoard) []BoardEntry {
	t.Helper()
	all, err := h.All()
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func boardKeys(t *testing.T, h *HealthBoard) []string {
	t.Helper()
	var keys []string
	for _, e := range boardEntries(t, h) {
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
		return slices.Equal(boardKeys(t, reader), []string{"host-1-aaaa", "host-2-bbbb"})
	})
	if err := poster.Put(t.Context(), "host-1-aaaa", []byte(`{"n":3}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the reader to see the newer snapshot", func() bool {
		all := boardEntries(t, reader)
		return len(all) == 2 && string(all[0].Value) == `{"n":3}`
	})
	if at := boardEntries(t, reader)[0].At; time.Since(at) > time.Minute || time.Until(at) > time.Minute {
		t.Errorf("entry stored at %v: not the broker's time of the put", at)
	}

	late := openBoard(t, b.bus)
	if got := boardKeys(t, late); !slices.Equal(got, []string{"host-1-aaaa", "host-2-bbbb"}) {
		t.Errorf("a board opened later has %v at once, want both entries", got)
	}

	if err := poster.Delete(t.Context(), "host-2-bbbb"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the deleted entry to go", func() bool {
		return slices.Equal(boardKeys(t, reader), []string{"host-1-aaaa"})
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
		eventually(t, 10*time.Second, "the entry", func() bool { return len(boardEntries(t, h)) == 1 })
		h.mu.Lock()
		seen := h.entries["dead"].seen
		h.now = func() time.Time { return seen.Add(DefaultHealthTTL - time.Millisecond) }
		h.mu.Unlock()
		if len(boardEntries(t, h)) != 1 {
			t.Error("an entry younger than HealthTTL is gone")
		}
		h.mu.Lock()
		h.now = func() time.Time { return seen.Add(DefaultHealthTTL) }
		h.mu.Unlock()
		if got := boardEntries(t, h); len(got) != 0 {
			t.Errorf("an entry HealthTTL old is still on the board: %v", got)
		}

		st, err := h.kv.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.TTL() != DefaultHealthTTL || st.History() != 1 {
			t.Errorf("bucket keeps values %v with history %d, want %v and 1", st.TTL(), st.History(), DefaultHealthTTL)
		}
	})
}

// The broker itself forgets an entry after the configured TTL: a board
// opened after that does not have it, whatever its clock says.
func TestHealthBoardBucketExpires(t *testing.T) {
	srv := startExternal(t, -1, t.TempDir())
	f := connect(t, Config{URL: srv.ClientURL(), HealthTTL: time.Second})
	h := openBoard(t, f.bus)
	if err := h.Put(t.Context(), "dead", []byte("x")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the broker to drop the entry", func() bool {
		_, err := h.kv.Get(t.Context(), "dead")
		return err != nil
	})
	if got := boardKeys(t, openBoard(t, f.bus)); len(got) != 0 {
		t.Errorf("a board opened after the TTL has %v", got)
	}
}

// A reader cut off from the broker says so rather than serving what it
// last heard as if it were current, and reads the board again once the
// broker is back.
func TestHealthBoardUnreachable(t *testing.T) {
	store := t.TempDir()
	srv := startExternal(t, -1, store)
	port := srv.Addr().(*net.TCPAddr).Port
	f := connect(t, Config{URL: srv.ClientURL()})
	h := openBoard(t, f.bus)
	if err := h.Put(t.Context(), "p", []byte("x")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the entry", func() bool { return len(boardEntries(t, h)) == 1 })
	srv.Shutdown()
	srv.WaitForShutdown()
	eventually(t, 10*time.Second, "the board to report the broker away", func() bool {
		_, err := h.All()
		return errors.Is(err, ErrBoardUnreachable)
	})

	startExternal(t, port, store)
	eventually(t, 30*time.Second, "the board to answer again", func() bool {
		_, err := h.All()
		return err == nil
	})
	if err := h.Put(t.Context(), "q", []byte("y")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a post after the reconnect", func() bool {
		return slices.Contains(boardKeys(t, h), "q")
	})
	h.Close()
	if _, err := h.All(); !errors.Is(err, ErrBoardUnreachable) {
		t.Errorf("a closed board answers %v", err)
	}
	// Close before the second server stops, or the bus would be closing
	// a reconnecting connection.
	if err := f.bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestHealthBoardRefusesBadKeys(t *testing.T) {
	forEachMode(t, func(t *testing.T, f fixture) {
		h := openBoard(t, f.bus)
		if err := h.Put(t.Context(), "a b*", []byte("x")); err == nil {
			t.Error("a key with a space and a wildcard was posted")
		}
		if len(boardEntries(t, h)) != 0 {
			t.Error("the refused post is on the board")
		}
	})
}
