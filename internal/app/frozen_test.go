package app_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/store/postgres/pgtest"
)

// throwawayPostgres starts a PostgreSQL cluster of the test's own (never
// the shared one: the test freezes it) and returns its URL and the
// function that freezes (SIGSTOP) or thaws (SIGCONT) every process of it.
func throwawayPostgres(t *testing.T) (url string, signal func(syscall.Signal)) {
	t.Helper()
	if bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(bins) == 0 {
		if os.Getenv(pgtest.EnvRequire) != "" {
			t.Fatal("no PostgreSQL binaries to start a throwaway cluster")
		}
		t.Skip("no PostgreSQL binaries to start a throwaway cluster")
	}
	// Not t.TempDir: run as root, the server runs as the postgres user,
	// which must reach the directory (t.TempDir's parents are 0700).
	dir, err := os.MkdirTemp("", "yolda-frozen-pg")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join("..", "..", "scripts", "postgres-test-cluster.sh")
	out, err := exec.Command(script, "start", dir).Output()
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("start a throwaway cluster: %v", err)
	}
	url = strings.TrimSpace(string(out))
	pidFile, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	postmaster, err := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	// The postmaster and every backend it forked: a server whose
	// connections stop answering, as a frozen machine's would.
	signal = func(sig syscall.Signal) {
		pids := []int{postmaster}
		procs, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...; comm may hold spaces.
			rest := string(b)[strings.LastIndexByte(string(b), ')')+2:]
			if f := strings.Fields(rest); len(f) > 1 && f[1] == strconv.Itoa(postmaster) {
				pid, _ := strconv.Atoi(strings.Fields(string(b))[0])
				pids = append(pids, pid)
			}
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, sig)
		}
	}
	t.Cleanup(func() {
		signal(syscall.SIGCONT)
		_ = exec.Command(script, "stop", dir).Run()
		_ = os.RemoveAll(dir)
	})
	return url, signal
}

// SIGTERM with PostgreSQL frozen mid-load: the process still stops within
// YOLDA_SHUTDOWN_TIMEOUT (every wait on the database is bounded: the HTTP
// drain, intake's commits, the relay's records, the consumers' handlers),
// and once the database thaws every request answered 202 is there.
func TestShutdownWithPostgresFrozen(t *testing.T) {
	const timeout = 12 * time.Second // the default is 20s; 12s leaves the closing of the stores its third on a loaded machine
	url, signal := throwawayPostgres(t)
	e := environment{dataDir: t.TempDir(), databaseURL: url}
	e.addAccounts(t)
	in := e.start(t, "--shutdown-timeout", timeout.String())
	token := login(t, in, "ayse", "ayse-password")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := loadUntil(ctx, &http.Client{Timeout: time.Minute}, in, token, 8)
	// Let some requests through before the freeze.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, body := get(t, in, token, "/v1/requests?limit=1"); code == 200 && strings.Contains(string(body), `"id":"req_`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no request accepted before the freeze")
		}
		time.Sleep(20 * time.Millisecond)
	}
	signal(syscall.SIGSTOP)
	start := time.Now()
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-in.done:
	case <-time.After(3 * timeout):
		t.Fatalf("yolda did not stop within %s of SIGTERM with PostgreSQL frozen", 3*timeout)
	}
	took := time.Since(start)
	t.Logf("stopped %s after SIGTERM with PostgreSQL frozen (shutdown timeout %s)", took.Round(time.Millisecond), timeout)
	// A second of slack for the process itself (a race-built binary).
	if took > timeout+time.Second {
		t.Errorf("stopped %s after SIGTERM, more than the %s shutdown timeout\n%s", took, timeout, in.logs.String())
	}
	cancel()
	ids := wait()

	signal(syscall.SIGCONT)
	in = e.start(t)
	opToken := login(t, in, "operator1", "op-password")
	missing := 0
	for _, id := range ids {
		if code, _ := get(t, in, opToken, "/v1/requests/"+id); code != 200 {
			missing++
		}
	}
	if missing > 0 || len(ids) == 0 {
		t.Errorf("%d of %d requests answered 202 are missing", missing, len(ids))
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	<-in.done
}
