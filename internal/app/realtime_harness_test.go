package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/telemetry"
)

// A node is one Yolda process assembled in the test binary, running its
// roles' services (the realtime gateway among them) on a real HTTP
// listener, until the test ends.
type node struct {
	p   *process
	url string // http://host:port
}

// startNode assembles a process of roles and runs it; it returns once the
// API answers and the gateway's fan-out is attached. setup, if given,
// sees the assembled process before its services start.
func startNode(t *testing.T, roles string, edit func(*config.Config), setup ...func(*process)) *node {
	t.Helper()
	addr := freeAddr(t)
	p := testProcess(t, roles, func(c *config.Config) {
		c.HTTPAddr = addr
		c.UserRate, c.IPRate = 0, 0
		c.MaxConnsPerIP = 0
		if edit != nil {
			edit(c)
		}
	})
	if err := p.assemble(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(p)
	}
	ss, err := p.services()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServices(ctx, ss) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node %s: %v", roles, err)
		}
	})
	n := &node{p: p, url: "http://" + addr}
	deadline := time.After(30 * time.Second)
	if p.gateway != nil {
		select {
		case <-p.gateway.Ready():
		case err := <-done:
			t.Fatalf("node stopped at start: %v", err)
		case <-deadline:
			t.Fatal("the gateway did not attach its fan-out")
		}
	}
	for {
		resp, err := http.Get(n.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-deadline:
			t.Fatalf("node did not answer: %v", err)
		case <-time.After(20 * time.Millisecond): // polling the listener, not standing in for an event
		}
	}
	return n
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// addUser creates an account in the node's store.
func (n *node) addUser(t *testing.T, role identity.Role, username string) account.User {
	t.Helper()
	svc, err := account.NewService(n.p.store, account.DefaultHasher())
	if err != nil {
		t.Fatal(err)
	}
	nu := account.NewUser{Username: username, Password: username + "-password", Role: role, Name: "Name " + username, Phone: "+905551112233"}
	if role == identity.Driver {
		nu.VehiclePlate, nu.Capabilities = "34TOW"+fmt.Sprint(len(username)), []string{"tow", "jump_start"}
	}
	u, err := svc.Add(t.Context(), nu)
	if err != nil {
		t.Fatalf("add %s: %v", username, err)
	}
	return u
}

// call makes an API call and decodes the answer into out (if not nil).
func (n *node) call(t *testing.T, method, path, token string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.url+path, r)
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
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode
}

func (n *node) login(t *testing.T, username string) string {
	t.Helper()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if code := n.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": username, "password": username + "-password"}, &out); code != 200 {
		t.Fatalf("login %s: %d", username, code)
	}
	return out.AccessToken
}

// createRequest asks for a jump start near Fatih and returns its id.
func (n *node) createRequest(t *testing.T, token string) string {
	t.Helper()
	var out struct {
		ID string `json:"id"`
	}
	body := map[string]any{
		"service_type": "jump_start",
		"location":     map[string]any{"lat": 41.0082, "lng": 28.9784, "province": "İstanbul", "district": "Fatih"},
		"vehicle":      map[string]any{"plate": "34ABC123", "type": "car"},
		"policy":       map[string]any{"insurer": "anadolu", "policy_number": "POL-1"},
		"contact":      map[string]any{"name": "Ayşe Yılmaz", "phone": "+905551112233"},
	}
	if code := n.call(t, "POST", "/v1/requests", token, body, &out); code != http.StatusAccepted {
		t.Fatalf("create request: %d", code)
	}
	return out.ID
}

// must calls and requires the status code.
func (n *node) must(t *testing.T, want int, method, path, token string, body any) {
	t.Helper()
	var out json.RawMessage
	if code := n.call(t, method, path, token, body, &out); code != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, out)
	}
}

// wsURL is the node's WebSocket URL.
func (n *node) wsURL() string { return "ws" + strings.TrimPrefix(n.url, "http") + "/v1/ws" }

// client is a WebSocket client of the test.
type client struct {
	t  *testing.T
	ws *websocket.Conn
	mu sync.Mutex
}

type message map[string]any

func (m message) str(k string) string { s, _ := m[k].(string); return s }
func (m message) num(k string) float64 {
	f, _ := m[k].(float64)
	return f
}

// dial opens a WebSocket with the token in the Authorization header.
func dial(t *testing.T, n *node, token string) *client {
	t.Helper()
	c, resp, err := dialWith(t.Context(), n.wsURL(), token, nil, nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, status(resp))
	}
	return &client{t: t, ws: c}
}

func status(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	return resp.Status
}

func dialWith(ctx context.Context, url, token string, header http.Header, httpClient *http.Client) (*websocket.Conn, *http.Response, error) {
	if header == nil {
		header = http.Header{}
	}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header, HTTPClient: httpClient})
	if c != nil {
		c.SetReadLimit(1 << 20)
	}
	return c, resp, err
}

func (c *client) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// read returns the next message, waiting at most 20 s.
func (c *client) read() (message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, data, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("not JSON: %s", data)
	}
	return m, nil
}

// next returns the next message that matches, skipping others.
func (c *client) next(match func(message) bool) message {
	c.t.Helper()
	for {
		m, err := c.read()
		if err != nil {
			c.t.Fatalf("waiting for a message: %v", err)
		}
		if match(m) {
			return m
		}
	}
}

func isType(typ string) func(message) bool {
	return func(m message) bool { return m.str("type") == typ }
}

// statusOf matches request.status messages of one request.
func statusOf(requestID string) func(message) bool {
	return func(m message) bool { return m.str("type") == "request.status" && m.str("request_id") == requestID }
}

// closeStatus is the close code a read ended with (-1: not a close).
func closeStatus(err error) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Reason
	}
	return -1, ""
}

// location is a driver's location message at a point, measured now.
func location(lat, lng float64, at time.Time) map[string]any {
	return map[string]any{"type": "location", "lat": lat, "lng": lng, "heading": 90, "speed_kmh": 30, "accuracy_m": 5,
		"recorded_at": at.UTC().Format(time.RFC3339Nano)}
}

// smallReceiveBuffer dials with a small socket receive buffer (set before
// the connection is made, so that the TCP window is small from the
// start): a client that stops reading soon stops the server's writes.
func smallReceiveBuffer(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return d.DialContext(ctx, network, addr)
}

// smallSendBuffers makes the server's sockets' send buffers small (and
// fixed: no autotuning), so that a client that stops reading blocks the
// server's writes to it within a few KiB rather than megabytes.
func smallSendBuffers(p *process) {
	p.wrapListener = func(ln net.Listener) net.Listener { return sendBufferListener{ln} }
}

type sendBufferListener struct{ net.Listener }

func (l sendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// telemetryValue sums a metric of the node.
func telemetryValue(n *node, name string, labels map[string]string) (float64, error) {
	return telemetry.Sum(n.p.registry, name, labels)
}
