package app

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWarnIfDataDirOpen(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "yolda.db"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func() string {
		var b bytes.Buffer
		warnIfDataDirOpen(dir, slog.New(slog.NewTextHandler(&b, nil)))
		return b.String()
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out := check(); out != "" {
		t.Errorf("private dir warned: %s", out)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out := check(); !strings.Contains(out, "data directory is open") || !strings.Contains(out, "chmod 700") {
		t.Errorf("world-readable dir not warned about: %q", out)
	}
	if err := os.Chmod(filepath.Join(dir, "yolda.db"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := check(); !strings.Contains(out, "chmod 600 "+filepath.Join(dir, "yolda.db")) {
		t.Errorf("readable file not warned about: %q", out)
	}
}
