package app_test

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/redistest"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
)

// sharedEdge is two API processes of one deployment: one PostgreSQL, one
// Redis, one token secret, each with a data dir of its own.
func sharedEdge(t *testing.T, redisURL string, vars ...string) (a, b *instance, e environment) {
	t.Helper()
	e = environment{dataDir: t.TempDir(), databaseURL: pgtest.URL(t)}.with(append([]string{
		"YOLDA_REDIS_URL=" + redisURL, "YOLDA_JWT_SECRET=shared-secret-shared-secret-shared-secret", "YOLDA_ROLES=api",
	}, vars...)...)
	e.addAccounts(t)
	a = e.start(t)
	e2 := e
	e2.dataDir = t.TempDir()
	b = e2.start(t)
	return a, b, e
}

func status(t *testing.T, in *instance, method, path, token, body string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, in.url(path), strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// A client alternating between two API processes is limited as one: they
// spend from the same budget in Redis.
func TestSharedRateLimitAcrossProcesses(t *testing.T) {
	a, b, _ := sharedEdge(t, redistest.URL(t), "YOLDA_RATE_LIMITS=board.customer=0.001/s:6")
	token := login(t, a, "ayse", "ayse-password")
	codes := map[int]int{}
	for i := range 12 {
		in := a
		if i%2 == 1 {
			in = b
		}
		code, h := status(t, in, "GET", "/v1/requests", token, "")
		codes[code]++
		if code == 429 && h.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if codes[200] != 6 || codes[429] != 6 {
		t.Errorf("12 board reads over two processes with a shared burst of 6: %v", codes)
	}
}

// With Redis gone, the classes fail as documented: creating requests goes
// on (open), logging in is refused with 503 (closed); when Redis is back,
// limits apply again.
func TestRateLimitsWhenRedisDies(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("YOLDA_REQUIRE_SERVICES") != "" {
			t.Fatal("redis-server is not installed and YOLDA_REQUIRE_SERVICES is set")
		}
		t.Skip("redis-server not installed")
	}
	_, p, _ := net.SplitHostPort(freePort(t))
	port, _ := strconv.Atoi(p)
	dir := t.TempDir()
	redis := startRedis(t, dir, port)
	url := "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"
	a, _, _ := sharedEdge(t, url, "YOLDA_RATE_LIMITS=create-request.customer=0.001/s:3,login.address=10/s:100")
	token := login(t, a, "ayse", "ayse-password")
	if code, _ := status(t, a, "POST", "/v1/requests", token, body); code != 202 {
		t.Fatalf("create with Redis up: %d", code)
	}
	_ = redis.Process.Kill()
	_ = redis.Wait()
	for i := range 5 {
		if code, _ := status(t, a, "POST", "/v1/requests", token, body); code != 202 {
			t.Errorf("create %d with Redis down (fails open, burst of 3 passed): %d", i, code)
		}
	}
	code, h := status(t, a, "POST", "/v1/auth/login", "", `{"username":"ayse","password":"ayse-password"}`)
	if code != 503 || h.Get("Retry-After") == "" {
		t.Errorf("login with Redis down (fails closed): %d, Retry-After %q", code, h.Get("Retry-After"))
	}
	startRedis(t, dir, port)
	// The limiter asks Redis again a second after its last failure; the
	// budget starts whole on the empty server: three pass, then 429.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _ := status(t, a, "POST", "/v1/auth/login", "", `{"username":"ayse","password":"ayse-password"}`)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login still %d 30s after Redis came back", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	codes := map[int]int{}
	for range 5 {
		code, _ := status(t, a, "POST", "/v1/requests", token, body)
		codes[code]++
	}
	if codes[202] != 3 || codes[429] != 2 {
		t.Errorf("creates once Redis is back (burst of 3): %v", codes)
	}
}

// startRedis runs a redis-server without persistence in the foreground of
// a child process, and waits until it answers.
func startRedis(t *testing.T, dir string, port int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %d did not answer", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Read-your-writes across processes sharing the Redis cache: a request
// cached by process b, cancelled through process a, reads cancelled
// through b at once.
func TestSharedCacheReadYourWrites(t *testing.T) {
	a, b, _ := sharedEdge(t, redistest.URL(t))
	token := login(t, a, "ayse", "ayse-password")
	id, code, err := post(http.DefaultClient, a, token)
	if err != nil || code != 202 {
		t.Fatalf("create: %d %v", code, err)
	}
	for range 3 { // b caches it
		if code, _ := get(t, b, token, "/v1/requests/"+id); code != 200 {
			t.Fatalf("read through b: %d", code)
		}
	}
	if code, _ := status(t, a, "POST", "/v1/requests/"+id+"/cancel", token, `{"reason":"found help"}`); code != 200 {
		t.Fatalf("cancel through a: %d", code)
	}
	_, got := get(t, b, token, "/v1/requests/"+id)
	if !strings.Contains(string(got), `"status":"cancelled"`) {
		t.Errorf("b after a's cancel: %s", got)
	}
}
