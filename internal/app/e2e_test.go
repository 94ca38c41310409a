package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/store/postgres/pgtest"
)

// These tests run the real binary: the commands, the embedded defaults,
// graceful shutdown and what survives a SIGKILL.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "yolda-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "yolda")
	build := exec.Command("go", "build", "-race", "-o", binary, "../../cmd/yolda")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build yolda:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type instance struct {
	cmd  *exec.Cmd
	addr string
	// ops is the operations listener's address (metrics).
	ops  string
	logs *syncBuffer
	// done receives Wait's result once; exited closes after it.
	done   chan error
	exited chan struct{}
}

// syncBuffer is the logs of an instance: written by the goroutine that
// reads its stderr, read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) WriteString(x string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(x)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// environment for one Yolda: a data dir and, optionally, PostgreSQL and
// more variables.
type environment struct {
	dataDir     string
	databaseURL string
	extra       []string
}

func (e environment) env() []string {
	env := append(os.Environ(), "YOLDA_DATA_DIR="+e.dataDir, "YOLDA_LOG_FORMAT=json",
		"YOLDA_RATE_LIMIT_USER=0", "YOLDA_RATE_LIMIT_IP=0", "YOLDA_OPS_ADDR=127.0.0.1:0")
	if e.databaseURL != "" {
		env = append(env, "YOLDA_DATABASE_URL="+e.databaseURL)
	}
	return append(env, e.extra...)
}

// with returns e with more variables.
func (e environment) with(vars ...string) environment {
	e.extra = append(slices.Clip(e.extra), vars...)
	return e
}

// run runs a command that must end by itself within a minute.
func (e environment) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = e.env()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("yolda %v did not end within a minute:\n%s", args, out)
	}
	return string(out), err
}

// addAccounts creates the customer ayse and the operator operator1 with
// `yolda users add`.
func (e environment) addAccounts(t *testing.T) {
	t.Helper()
	for _, args := range [][]string{
		{"--role", "customer", "--username", "ayse", "--password", "ayse-password"},
		{"--role", "operator", "--username", "operator1", "--password", "op-password"},
	} {
		if out, err := e.run(t, append([]string{"users", "add"}, args...)...); err != nil {
			t.Fatalf("users add %v: %v %s", args, err, out)
		}
	}
}

var (
	listening      = regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`)
	opsListeningAt = regexp.MustCompile(`"msg":"operations listening","addr":"([^"]+)"`)
)

// servesAPI reports whether serve's args run the api role.
func servesAPI(args []string) bool {
	for i, a := range args {
		if a == "--roles" && i+1 < len(args) {
			return args[i+1] == "all" || strings.Contains(","+args[i+1]+",", ",api,")
		}
	}
	return true
}

func (e environment) start(t *testing.T, args ...string) *instance {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--http-addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = e.env()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in := &instance{cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1), exited: make(chan struct{})}
	// Ready once its listeners listen: the operations one always (the
	// environment sets YOLDA_OPS_ADDR), the API one with the api role.
	api := servesAPI(args)
	addrc, opsc := make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			in.logs.WriteString(sc.Text() + "\n")
			if m := opsListeningAt.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case opsc <- m[1]:
				default:
				}
			} else if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		in.done <- cmd.Wait()
		close(in.exited)
	}()
	// Whatever the test did, the process is gone before its data dir is
	// removed.
	t.Cleanup(func() {
		select {
		case <-in.exited:
		default:
			_ = cmd.Process.Kill()
			<-in.exited
		}
	})
	timeout := time.After(30 * time.Second)
	for in.ops == "" || in.addr == "" {
		select {
		case in.ops = <-opsc:
			if !api {
				in.addr = in.ops
			}
		case in.addr = <-addrc:
		case <-in.exited:
			t.Fatalf("yolda exited at start:\n%s", in.logs.String())
		case <-timeout:
			t.Fatalf("yolda did not start:\n%s", in.logs.String())
		}
	}
	return in
}

func (in *instance) url(path string) string { return "http://" + in.addr + path }

// opsURL is a path on the operations listener (metrics).
func (in *instance) opsURL(path string) string { return "http://" + in.ops + path }

func login(t *testing.T, in *instance, user, password string) string {
	t.Helper()
	resp, err := http.Post(in.url("/v1/auth/login"), "application/json",
		strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, user, password)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
		t.Fatalf("login %s: %d %v", user, resp.StatusCode, err)
	}
	return m.AccessToken
}

const body = `{"service_type":"jump_start","location":{"lat":39.93,"lng":32.85,"province":"Ankara"},
"vehicle":{"plate":"06ABC123","type":"car"},"policy":{"insurer":"anadolu","policy_number":"POL-1"},
"contact":{"name":"Ali Veli","phone":"+905551112233"}}`

func post(client *http.Client, in *instance, token string) (string, int, error) {
	req, err := http.NewRequest("POST", in.url("/v1/requests"), strings.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	var m struct {
		ID string `json:"id"`
	}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return m.ID, resp.StatusCode, nil
}

// loadUntil posts requests from workers goroutines until ctx ends or the
// server stops answering, and returns a function that waits for them and
// gives the ids of the requests answered 202.
func loadUntil(ctx context.Context, client *http.Client, in *instance, token string, workers int) func() []string {
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				id, code, err := post(client, in, token)
				if err != nil {
					return // the server is gone
				}
				if code == 202 {
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				}
			}
		}()
	}
	return func() []string {
		wg.Wait()
		return ids
	}
}

func get(t *testing.T, in *instance, token, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", in.url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func engines(t *testing.T) map[string]func(t *testing.T) environment {
	return map[string]func(t *testing.T) environment{
		"sqlite": func(t *testing.T) environment { return environment{dataDir: t.TempDir()} },
		"postgres": func(t *testing.T) environment {
			return environment{dataDir: t.TempDir(), databaseURL: pgtest.URL(t)}
		},
	}
}

func TestCommands(t *testing.T) {
	e := environment{dataDir: t.TempDir()}
	out, err := e.run(t, "serve", "--help")
	if err != nil || !strings.Contains(out, "YOLDA_DATABASE_URL") || !strings.Contains(out, "YOLDA_NATS_URL") || !strings.Contains(out, "-http-addr") {
		t.Errorf("serve --help should list flags with their variables and exit 0: %v\n%s", err, out)
	}
	if cmd := exec.Command(binary, "frobnicate"); cmd.Run() == nil || cmd.ProcessState.ExitCode() != 2 {
		t.Error("unknown command did not exit 2")
	}
	if out, err := e.run(t, "users", "add", "--help"); err != nil || !strings.Contains(out, "-username") || !strings.Contains(out, "-data-dir") ||
		strings.Contains(out, "-roles") || strings.Contains(out, "-http-addr") {
		t.Errorf("users add --help should list its own flags and where the store is, exit 0: %v\n%s", err, out)
	}
	if out, err := e.run(t, "migrate"); err != nil || !strings.Contains(out, "schema up to date (sqlite, "+filepath.Join(e.dataDir, "yolda.db")+")") {
		t.Errorf("migrate: %v %s", err, out)
	}
	if out, err := e.run(t, "version"); err != nil || !strings.HasPrefix(out, "yolda ") {
		t.Errorf("version: %v %s", err, out)
	}
	if out, err := e.run(t, "users", "add", "--role", "pilot", "--username", "x1x", "--password", "password1"); err == nil || !strings.Contains(out, "role") {
		t.Errorf("bad role accepted: %s", out)
	}
	if out, err := e.run(t, "users", "add", "--role", "driver", "--username", "driver1", "--password", "password1"); err == nil || !strings.Contains(out, "vehicle_plate") {
		t.Errorf("driver without a vehicle accepted: %s", out)
	}
	if _, err := os.Stat(filepath.Join(e.dataDir, "yolda.db")); err != nil {
		t.Errorf("embedded database not created in the data dir: %v", err)
	}
}

// TestServeAndShutdown: accounts are added while the server runs, a
// SIGTERM lets in-flight requests finish, and every 202 is there after a
// restart.
func TestServeAndShutdown(t *testing.T) {
	for name, newEnv := range engines(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			in := e.start(t)
			e.addAccounts(t) // while the server runs
			token := login(t, in, "ayse", "ayse-password")

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			wait := loadUntil(ctx, &http.Client{Timeout: 30 * time.Second}, in, token, 16)
			time.Sleep(500 * time.Millisecond)
			in.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-in.done:
				if err != nil {
					t.Errorf("yolda exited with %v after SIGTERM\n%s", err, in.logs.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatal("yolda did not stop after SIGTERM")
			}
			cancel()
			ids := wait()
			if len(ids) == 0 {
				t.Fatal("no request was accepted before the shutdown")
			}
			in = e.start(t)
			opToken := login(t, in, "operator1", "op-password")
			missing := 0
			for _, id := range ids {
				if code, _ := get(t, in, opToken, "/v1/requests/"+id); code != 200 {
					missing++
				}
			}
			t.Logf("%s: %d requests accepted before SIGTERM, %d missing after restart", name, len(ids), missing)
			if missing > 0 {
				t.Errorf("%d of %d accepted requests lost", missing, len(ids))
			}
			in.cmd.Process.Signal(syscall.SIGTERM)
			<-in.done
		})
	}
}

// TestKill9LosesNothingAccepted posts requests at full speed, kills the
// server with SIGKILL mid-stream, restarts it and checks that every request
// answered 202 is stored with its timeline.
func TestKill9LosesNothingAccepted(t *testing.T) {
	for name, newEnv := range engines(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.addAccounts(t)
			in := e.start(t)
			token := login(t, in, "ayse", "ayse-password")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			wait := loadUntil(ctx, &http.Client{Timeout: 10 * time.Second}, in, token, 32)
			time.Sleep(time.Second)
			if err := in.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-in.done
			cancel()
			ids := wait()
			if len(ids) < 10 {
				t.Fatalf("only %d requests accepted before the kill", len(ids))
			}
			in = e.start(t)
			opToken := login(t, in, "operator1", "op-password")
			missing := 0
			for _, id := range ids {
				code, b := get(t, in, opToken, "/v1/requests/"+id)
				if code != 200 || !bytes.Contains(b, []byte(`"timeline":[{"status":"received"`)) {
					missing++
				}
			}
			t.Logf("%s: %d requests accepted before SIGKILL, %d missing after restart", name, len(ids), missing)
			if missing != 0 {
				t.Errorf("%d of %d accepted requests lost to kill -9", missing, len(ids))
			}
			in.cmd.Process.Signal(syscall.SIGTERM)
			<-in.done
		})
	}
}

// notificationCount is how many notifications a request has, as its
// customer sees them.
func notificationCount(t *testing.T, in *instance, token, id string) int {
	t.Helper()
	code, b := get(t, in, token, "/v1/requests/"+id+"/notifications")
	if code != 200 {
		t.Fatalf("notifications of %s: %d %s", id, code, b)
	}
	var m struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return len(m.Items)
}

// TestCrashBetweenCommitAndPublish: requests are committed by a process
// that runs only the API (so nothing is published), the process is killed,
// and a full process started later publishes every row; the notify worker
// applies each exactly once. Then the full process is itself killed with
// SIGKILL under load, restarted, and still every accepted request ends
// with exactly one notification.
func TestCrashBetweenCommitAndPublish(t *testing.T) {
	for name, newEnv := range engines(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.addAccounts(t)
			apiOnly := e.start(t, "--roles", "api")
			token := login(t, apiOnly, "ayse", "ayse-password")
			client := &http.Client{Timeout: 10 * time.Second}
			var ids []string
			for range 50 {
				id, code, err := post(client, apiOnly, token)
				if err != nil || code != 202 {
					t.Fatalf("post: %d %v", code, err)
				}
				ids = append(ids, id)
			}
			apiOnly.cmd.Process.Kill()
			<-apiOnly.done

			full := e.start(t)
			// Load while the full process runs, then kill it mid-stream.
			ctx, cancel := context.WithCancel(context.Background())
			wait := loadUntil(ctx, client, full, token, 8)
			time.Sleep(700 * time.Millisecond)
			full.cmd.Process.Kill()
			<-full.done
			cancel()
			ids = append(ids, wait()...)

			again := e.start(t)
			deadline := time.Now().Add(60 * time.Second)
			var missing, doubled int
			for {
				missing, doubled = 0, 0
				for _, id := range ids {
					switch n := notificationCount(t, again, token, id); {
					case n == 0:
						missing++
					case n > 1:
						doubled++
					}
				}
				if missing == 0 || time.Now().After(deadline) {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			t.Logf("%s: %d accepted requests across two crashes: %d without a notification, %d with more than one", name, len(ids), missing, doubled)
			if missing != 0 || doubled != 0 {
				t.Errorf("%d missing, %d doubled notifications", missing, doubled)
			}
			again.cmd.Process.Signal(syscall.SIGTERM)
			<-again.done
		})
	}
}
