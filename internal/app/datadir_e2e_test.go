package app_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// stop sends SIGTERM and waits for a clean exit.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-in.done; err != nil {
		t.Errorf("yolda exited with %v after SIGTERM\n%s", err, in.logs.String())
	}
}

// TestOneServerPerDataDir: a second server on the data directory of a
// running one refuses to start and names the holder's pid; users add and
// migrate still work beside the running server; once it stops, the next
// one starts.
func TestOneServerPerDataDir(t *testing.T) {
	e := environment{dataDir: t.TempDir()}
	first := e.start(t)
	out, err := e.run(t, "serve", "--http-addr", "127.0.0.1:0")
	want := "held by another yolda serve (pid " + strconv.Itoa(first.cmd.Process.Pid) + ")"
	if err == nil || !strings.Contains(out, want) {
		t.Fatalf("second serve on one data dir: %v, want an error with %q:\n%s", err, want, out)
	}
	e.addAccounts(t)
	if out, err := e.run(t, "migrate"); err != nil {
		t.Errorf("migrate beside a running server: %v %s", err, out)
	}
	login(t, first, "ayse", "ayse-password") // the first one is unharmed
	first.stop(t)
	e.start(t).stop(t)
}

// TestServersShareADataDirWithoutEmbeddedState: on PostgreSQL, an
// api-only process keeps nothing of its own in the data directory, so two
// of them may share it (the generated JWT secret is what they share).
func TestServersShareADataDirWithoutEmbeddedState(t *testing.T) {
	e := engines(t)["postgres"](t)
	e.addAccounts(t)
	a := e.start(t, "--roles", "api")
	b := e.start(t, "--roles", "api")
	token := login(t, a, "ayse", "ayse-password")
	if code, body := get(t, b, token, "/v1/requests"); code != 200 {
		t.Errorf("a token of one api process is refused by the other: %d %s", code, body)
	}
	a.stop(t)
	b.stop(t)
}

// TestConfigCheckedBeforeStores: a bad setting stops serve before it
// creates or opens anything in the data directory.
func TestConfigCheckedBeforeStores(t *testing.T) {
	for _, bad := range []string{"YOLDA_HTTP_ADDR=127.0.0.1:99999", "YOLDA_RATE_LIMIT_USER=-1"} {
		dir := filepath.Join(t.TempDir(), "data")
		e := environment{dataDir: dir}.with(bad)
		out, err := e.run(t, "serve")
		name, _, _ := strings.Cut(strings.TrimPrefix(bad, "YOLDA_"), "=")
		flagName := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		if code := exitCode(err); code != 2 || !strings.Contains(out, flagName) {
			t.Errorf("%s: exit %d, want 2 and a message naming %s:\n%s", bad, code, flagName, out)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s: the data dir was created before the configuration was checked (%v)", bad, err)
		}
	}
}

// TestPprofOffLoopbackWarns: the profiler on every interface is allowed
// but logged as a warning.
func TestPprofOffLoopbackWarns(t *testing.T) {
	in := environment{dataDir: t.TempDir()}.with("YOLDA_PPROF_ADDR=0.0.0.0:0").start(t, "--roles", "api")
	in.stop(t)
	if logs := in.logs.String(); !strings.Contains(logs, `"level":"WARN","msg":"configuration: pprof-addr 0.0.0.0:0 is not a loopback address`) {
		t.Errorf("no warning for a pprof address off loopback:\n%s", logs)
	}
}

func exitCode(err error) int {
	if ee, ok := err.(interface{ ExitCode() int }); ok {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

// TestUsersAddSaysWhere: the data directory is relative to the current
// directory, so users add says which database it wrote to, and that it
// had to create it.
func TestUsersAddSaysWhere(t *testing.T) {
	cwd := t.TempDir()
	add := func(user string) string {
		cmd := exec.Command(binary, "users", "add", "--role", "customer", "--username", user, "--password", "password1")
		cmd.Dir = cwd
		cmd.Env = append(os.Environ(), "YOLDA_DATA_DIR=rel-data")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("users add: %v %s", err, out)
		}
		return string(out)
	}
	db := filepath.Join(cwd, "rel-data", "yolda.db")
	out := add("first")
	if !strings.Contains(out, "in "+db) || !strings.Contains(out, "no database at "+db+"; created a new one") {
		t.Errorf("first users add should name %s and say it created it:\n%s", db, out)
	}
	out = add("second")
	if !strings.Contains(out, "in "+db) || strings.Contains(out, "created a new one") {
		t.Errorf("second users add should name %s and not create it again:\n%s", db, out)
	}
}
