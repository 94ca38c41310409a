package app

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
)

func readyz(t *testing.T, p *process) int {
	t.Helper()
	rec := httptest.NewRecorder()
	p.api.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	return rec.Code
}

// TestReadyzWhenSQLiteIsClosed: /readyz asks the real store, so a closed
// database answers 503.
func TestReadyzWhenSQLiteIsClosed(t *testing.T) {
	p := testProcess(t, "api", nil)
	if err := p.assemble(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code := readyz(t, p); code != http.StatusOK {
		t.Fatalf("/readyz on an open store: %d", code)
	}
	p.store.close()
	if code := readyz(t, p); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz on a closed store: %d, want 503", code)
	}
}

// TestReadyzWhenPostgresStops starts a PostgreSQL cluster of its own
// (scripts/postgres-test-cluster.sh), so that it can stop it under a
// running process: /readyz then answers 503.
func TestReadyzWhenPostgresStops(t *testing.T) {
	script, err := filepath.Abs("../../scripts/postgres-test-cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !postgresInstalled() {
		if os.Getenv(pgtest.EnvRequire) != "" {
			t.Fatalf("PostgreSQL is not installed but %s is set", pgtest.EnvRequire)
		}
		t.Skip("PostgreSQL is not installed: skipping (scripts/postgres-test-cluster.sh installs it as root)")
	}
	// Not t.TempDir: the postgres user must be able to enter the parents.
	dir, err := os.MkdirTemp("", "yolda-readyz-pg")
	if err != nil {
		t.Fatal(err)
	}
	cluster := func(cmd string) string {
		t.Helper()
		out, err := exec.Command("bash", script, cmd, dir).Output()
		if err != nil {
			t.Fatalf("postgres-test-cluster.sh %s: %v\n%s", cmd, err, stderrOf(err))
		}
		return strings.TrimSpace(string(out))
	}
	t.Cleanup(func() {
		_ = exec.Command("bash", script, "stop", dir).Run()
		_ = os.RemoveAll(dir)
	})
	url := cluster("start")

	p := testProcess(t, "api", func(c *config.Config) { c.DatabaseURL = url })
	if err := p.assemble(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code := readyz(t, p); code != http.StatusOK {
		t.Fatalf("/readyz with PostgreSQL up: %d", code)
	}
	cluster("stop")
	if code := readyz(t, p); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with PostgreSQL stopped: %d, want 503", code)
	}
}

// postgresInstalled looks for initdb where the cluster script does.
func postgresInstalled() bool {
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(m) > 0 {
		return true
	}
	out, err := exec.Command("pg_config", "--bindir").Output()
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(strings.TrimSpace(string(out)), "initdb"))
	return err == nil
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}
