package migrate

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	good := fstest.MapFS{
		"m/0002_b.sql": {Data: []byte("B")},
		"m/0001_a.sql": {Data: []byte("A")},
		"m/README.md":  {Data: []byte("ignored")},
	}
	ms, err := Load(good, "m")
	if err != nil || len(ms) != 2 || ms[0].Version != 1 || ms[1].SQL != "B" {
		t.Fatalf("Load: %v %+v", err, ms)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":       {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"duplicate": {"m/0001_a.sql": {}, "m/0001_b.sql": {}},
		"bad name":  {"m/first.sql": {}},
	} {
		if _, err := Load(fsys, "m"); err == nil || !strings.Contains(err.Error(), "migration") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestPending(t *testing.T) {
	all := []Migration{{Version: 1}, {Version: 2}, {Version: 3}}
	for current, want := range map[int]int{0: 3, 2: 1, 3: 0} {
		if got, err := Pending(all, current); err != nil || len(got) != want {
			t.Errorf("Pending at %d: %d %v, want %d", current, len(got), err, want)
		}
	}
	if _, err := Pending(all, 4); !errors.Is(err, ErrSchemaNewer) || !strings.Contains(err.Error(), "schema version 4") {
		t.Errorf("Pending past the last: %v, want ErrSchemaNewer naming the version", err)
	}
}
