// Package e2e_test drives the web apps in a real browser: Debian's
// Chromium, headless, from Go (chromedp), against the real yolda binary
// with its embedded stores, a mock insurer and every role. One server
// and one browser serve the whole package; each test opens its own tabs,
// each in a fresh browser context (its own sessionStorage), and works in
// its own city, so that dispatch in one test never reaches another's
// drivers.
package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// h is the package's server and browser, set up once by TestMain.
var h *harness

type harness struct {
	skip    string // why the tests skip, when they do
	bin     string
	dir     string
	base    string
	secret  []byte
	browser context.Context
	shots   string
	seq     atomic.Int64
	logs    *lockedBuffer
	// addUsers runs `yolda users add` against the server's store.
	addUsers func(args ...string) error
}

// secretHex is the server's JWT secret: the tests mint an expired tracking
// link with it.
const secretHex = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

func TestMain(m *testing.M) {
	h = &harness{}
	code, err := h.setUp(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "browser tests:", err)
		if h.logs != nil {
			fmt.Fprintln(os.Stderr, h.logs.String())
		}
		code = 1
	}
	os.Exit(code)
}

// chromium finds Debian's Chromium.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func (h *harness) setUp(m *testing.M) (int, error) {
	chrome := chromium()
	if chrome == "" {
		if os.Getenv("YOLDA_REQUIRE_SERVICES") != "" {
			return 1, fmt.Errorf("chromium is not installed (apt-get install chromium; .ci/run does) and YOLDA_REQUIRE_SERVICES is set")
		}
		h.skip = "chromium is not installed (apt-get install chromium)"
		return m.Run(), nil
	}
	dir, err := os.MkdirTemp("", "yolda-browser")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	h.dir = dir
	h.shots = os.Getenv("YOLDA_SCREENSHOTS_DIR")
	if h.shots == "" {
		h.shots = filepath.Join(dir, "screenshots")
	}
	if err := os.MkdirAll(h.shots, 0o755); err != nil {
		return 1, err
	}
	h.bin = filepath.Join(dir, "yolda")
	build := exec.Command("go", "build", "-o", h.bin, "../../cmd/yolda")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return 1, fmt.Errorf("build yolda: %w", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var procs sync.WaitGroup
	// Processes end with the context; wait for them before the temporary
	// directory goes.
	defer procs.Wait()
	defer cancel()

	insurer := freeAddr()
	mock := exec.CommandContext(ctx, h.bin, "mock-insurer", "--addr", insurer, "--latency", "20ms")
	mock.Stderr = io.Discard
	if err := mock.Start(); err != nil {
		return 1, err
	}
	procs.Add(1)
	go func() { defer procs.Done(); _ = mock.Wait() }()
	// A second insurer is down from the start: its breaker opens as soon
	// as a few checks fail (the panel's alert).
	downInsurer := freeAddr()
	down := exec.CommandContext(ctx, h.bin, "mock-insurer", "--addr", downInsurer, "--mode", "down")
	down.Stderr = io.Discard
	if err := down.Start(); err != nil {
		return 1, err
	}
	procs.Add(1)
	go func() { defer procs.Done(); _ = down.Wait() }()
	insurers := filepath.Join(dir, "insurers.yaml")
	if err := os.WriteFile(insurers, []byte(fmt.Sprintf(`insurers:
  - code: anadolu
    name: Anadolu Sigorta
    base_url: http://%s
    timeout: 2s
    verify_before_dispatch: false
  - code: sompo
    name: Sompo Sigorta
    base_url: http://%s
    timeout: 1s
    verify_before_dispatch: true
    retry: {attempts: 1}
    breaker: {failures: 2, open_for: 1m}
`, insurer, downInsurer)), 0o644); err != nil {
		return 1, err
	}

	h.secret = []byte(secretHex)
	env := append(os.Environ(),
		"YOLDA_DATA_DIR="+filepath.Join(dir, "data"), "YOLDA_HTTP_ADDR=127.0.0.1:0", "YOLDA_OPS_ADDR=127.0.0.1:0",
		"YOLDA_JWT_SECRET="+secretHex, "YOLDA_INSURERS_FILE="+insurers, "YOLDA_LOG_FORMAT=json",
		"YOLDA_RATE_LIMIT_USER=0", "YOLDA_RATE_LIMIT_IP=0",
		// One round of 1 km, and a short wait: a request with no driver
		// that near is unfulfilled in seconds (the operator test assigns
		// it by hand); the driver test puts its request next to its driver.
		"YOLDA_DISPATCH_RADII_KM=1", "YOLDA_DISPATCH_WAIT=2s")
	serve := exec.CommandContext(ctx, h.bin, "serve")
	serve.Env = env
	stderr, err := serve.StderrPipe()
	if err != nil {
		return 1, err
	}
	if err := serve.Start(); err != nil {
		return 1, err
	}
	h.logs = &lockedBuffer{}
	addr := make(chan string, 1)
	procs.Add(1)
	go func() {
		defer procs.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		listening := regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`)
		for sc.Scan() {
			h.logs.WriteString(sc.Text() + "\n")
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_ = serve.Wait()
	}()
	h.addUsers = func(args ...string) error {
		cmd := exec.Command(h.bin, append([]string{"users", "add"}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("users add %v: %w: %s", args, err, out)
		}
		return nil
	}
	select {
	case a := <-addr:
		h.base = "http://" + a
	case <-time.After(60 * time.Second):
		return 1, fmt.Errorf("yolda did not start")
	}
	if err := waitHTTP(h.base+"/readyz", 30*time.Second); err != nil {
		return 1, err
	}
	for _, a := range []string{insurer, downInsurer} {
		if err := waitHTTP("http://"+a+"/control", 30*time.Second); err != nil {
			return 1, err
		}
	}

	// One browser for the package. Without the background-networking
	// flags Chromium tries to reach its services, which this closed
	// network refuses.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(dir, "chromium")),
		chromedp.WindowSize(1440, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil {
		return 1, fmt.Errorf("start chromium: %w", err)
	}
	h.browser = browser
	start := time.Now()
	code := m.Run()
	fmt.Fprintf(os.Stderr, "browser tests took %s; screenshots in %s\n", time.Since(start).Round(time.Millisecond), h.shots)
	if code != 0 {
		fmt.Fprintln(os.Stderr, "--- yolda's log:\n"+tail(h.logs.String(), 60))
	}
	return code, nil
}

func (h *harness) need(t *testing.T) {
	t.Helper()
	if h.skip != "" {
		t.Skip(h.skip)
	}
}

// user creates an account whose name is unique to this run.
func (h *harness) user(t *testing.T, role, prefix string, more ...string) (username, password string) {
	t.Helper()
	username = fmt.Sprintf("%s%d", prefix, h.seq.Add(1))
	password = username + "-password"
	if err := h.addUsers(append([]string{"--role", role, "--username", username, "--password", password}, more...)...); err != nil {
		t.Fatal(err)
	}
	return username, password
}

// api calls the API with a token and decodes the answer into out (when
// not nil); it fails the test unless the status is want.
func (h *harness) api(t *testing.T, token, method, path string, body any, want int, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

func (h *harness) login(t *testing.T, username, password string) string {
	t.Helper()
	var a struct {
		AccessToken string `json:"access_token"`
	}
	h.api(t, "", "POST", "/v1/auth/login", map[string]string{"username": username, "password": password}, 200, &a)
	return a.AccessToken
}

// driverAt puts a driver online at a position.
func (h *harness) driverAt(t *testing.T, token string, lat, lng float64) {
	t.Helper()
	h.api(t, token, "PUT", "/v1/drivers/me/availability", map[string]string{"availability": "online"}, 200, nil)
	h.moveDriver(t, token, lat, lng)
}

func (h *harness) moveDriver(t *testing.T, token string, lat, lng float64) {
	t.Helper()
	h.api(t, token, "POST", "/v1/drivers/me/location", map[string]any{
		"lat": lat, "lng": lng, "heading": 90, "speed_kmh": 40, "accuracy_m": 5, "recorded_at": time.Now().UTC().Format(time.RFC3339),
	}, 204, nil)
}

type request struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	Assignment *struct {
		DriverID     string `json:"driver_id"`
		VehiclePlate string `json:"vehicle_plate"`
	} `json:"assignment"`
}

// newRequest asks for help as a customer at a point, insured by anadolu.
func (h *harness) newRequest(t *testing.T, token, service string, lat, lng float64, province, plate string) request {
	t.Helper()
	return h.newRequestWith(t, token, "anadolu", service, lat, lng, province, plate)
}

func (h *harness) newRequestWith(t *testing.T, token, insurer, service string, lat, lng float64, province, plate string) request {
	t.Helper()
	body := map[string]any{
		"service_type": service,
		"location":     map[string]any{"lat": lat, "lng": lng, "province": province, "district": "Merkez", "address": "E-80 km 12"},
		"vehicle":      map[string]any{"plate": plate, "make": "Fiat", "model": "Egea", "type": "car"},
		"policy":       map[string]any{"insurer": insurer, "policy_number": "POL-123456"},
		"contact":      map[string]any{"name": "Ayşe Yılmaz", "phone": "+905551112233"},
	}
	if service == "tow" {
		body["destination"] = map[string]any{"lat": lat + 0.03, "lng": lng + 0.03, "address": "Servis"}
	}
	var r request
	h.api(t, token, "POST", "/v1/requests", body, 202, &r)
	return r
}

// tab is one browser tab in a fresh browser context, with its console
// watched: an error there fails the test unless the test expects it.
type tab struct {
	t       *testing.T
	ctx     context.Context
	name    string
	mu      sync.Mutex
	errs    []string
	allowed []*regexp.Regexp
}

func (h *harness) tab(t *testing.T, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(h.browser, chromedp.WithNewBrowserContext())
	tb := &tab{t: t, ctx: ctx, name: name}
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("open tab %s: %v", name, err)
	}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				tb.record(fmt.Sprintf("%s %s (%s %s:%d)", m.Type, m.Text, m.Source, m.URL, m.Line))
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, e := range tb.errs {
			t.Errorf("%s: console error: %s", name, e)
		}
	})
	return tb
}

func (tb *tab) record(msg string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, re := range tb.allowed {
		if re.MatchString(msg) {
			return
		}
	}
	tb.errs = append(tb.errs, msg)
}

// expectErrors lets console errors matching re pass (a refused link makes
// the browser log its 401).
func (tb *tab) expectErrors(re string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.allowed = append(tb.allowed, regexp.MustCompile(re))
}

func (tb *tab) run(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", tb.name, err)
	}
}

// until waits until the JavaScript expression is true (or within
// timeout), polling every 25 ms, and returns how long it took.
func (tb *tab) until(expr string, timeout time.Duration) time.Duration {
	tb.t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout+5*time.Second)
	defer cancel()
	ok, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil || !ok {
		body, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 2000)`))
		tb.t.Fatalf("%s: %s not true within %s (%v); the page says:\n%s", tb.name, expr, timeout, err, body)
	}
	return time.Since(start)
}

// eval evaluates a JavaScript expression in the tab.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.name, expr, err)
	}
	return v
}

func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.run(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// shot writes a screenshot of the tab to the screenshots directory.
func (tb *tab) shot(name string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatalf("%s: screenshot: %v", tb.name, err)
	}
	if err := os.WriteFile(filepath.Join(h.shots, name+".png"), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHTTP(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s: %v", url, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
