package id

import (
	"sort"
	"testing"
	"time"
)

func TestNewIsTimeOrderedAndValid(t *testing.T) {
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	var ids []string
	for i := 0; i < 1000; i++ {
		ids = append(ids, New("req", base.Add(time.Duration(i)*time.Millisecond)))
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids created one millisecond apart do not sort by time")
	}
	seen := map[string]bool{}
	for _, s := range ids {
		if !Valid("req", s) {
			t.Fatalf("Valid(%q) = false", s)
		}
		if seen[s] {
			t.Fatalf("duplicate id %q", s)
		}
		seen[s] = true
	}
}

func TestNewSameMillisecondIsUnique(t *testing.T) {
	now := time.Now()
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		s := New("req", now)
		if seen[s] {
			t.Fatalf("duplicate id %q", s)
		}
		seen[s] = true
	}
}

func TestValidRejects(t *testing.T) {
	good := New("req", time.Now())
	for _, s := range []string{"", "req_", "usr" + good[3:], good + "A", good[:len(good)-1] + "U", "req_../../etc/passwd0000000"} {
		if Valid("req", s) {
			t.Errorf("Valid(%q) = true", s)
		}
	}
}

func TestTimestampRoundTrip(t *testing.T) {
	// The first 10 characters encode the millisecond timestamp.
	a := New("x", time.UnixMilli(0))
	if a[2:12] != "0000000000" {
		t.Fatalf("zero time encodes as %q", a[2:12])
	}
	b := New("x", time.UnixMilli(1<<48-1))
	if b[2:12] != "7ZZZZZZZZZ" {
		t.Fatalf("max time encodes as %q", b[2:12])
	}
}

func TestTimeReadsTheCreationMillisecond(t *testing.T) {
	at := time.Date(2026, 11, 30, 23, 59, 59, 999_600_000, time.UTC)
	got, ok := Time(New("req", at))
	if !ok {
		t.Fatal("Time refused an id New made")
	}
	if want := at.Truncate(time.Millisecond); !got.Equal(want) {
		t.Fatalf("Time = %s, want %s", got, want)
	}
	for _, bad := range []string{"", "req", "req_short", "req_01JDQ3M6Y9B1X4G0ZC5V7N2K8!"} {
		if _, ok := Time(bad); ok {
			t.Errorf("Time(%q) accepted a non-id", bad)
		}
	}
}
