//go:build unix

package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/yolda/yolda/internal/store/sqlite"
)

// The database file and its -wal and -shm are the owner's alone, whatever
// the umask, and so is a data directory the store creates.
func TestDataFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o002) // a common login default; tests in this package are not parallel
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "yolda.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A write makes sure the WAL and the shared-memory index exist.
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v: readable by others", filepath.Base(p), perm)
		}
	}
}
