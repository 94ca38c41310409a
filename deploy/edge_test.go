package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const request = `{"service_type":"jump_start","location":{"lat":41.01,"lng":28.97,"province":"İstanbul"},
"vehicle":{"plate":"34ABC123","type":"car"},"policy":{"insurer":"anadolu","policy_number":"POL-1"},
"contact":{"name":"Ayşe Yılmaz","phone":"+905551112233"}}`

// TestEdge checks the Nginx configuration through a real Nginx in front
// of the whole topology (two api and two realtime processes behind it).
func TestEdge(t *testing.T) {
	c := startCluster(t,
		"YOLDA_EDGE_LOGIN_RATE=2", "YOLDA_EDGE_LOGIN_BURST=5",
		"YOLDA_RATE_LIMITS=board.customer=0.001/s:10")
	c.yolda(t, "users", "add", "--role", "customer", "--username", "ayse", "--password", "ayse-password")
	token := c.login(t, "ayse", "ayse-password")

	t.Run("nginx -t", func(t *testing.T) {
		nginx, err := exec.LookPath("nginx")
		if err != nil {
			nginx = "/usr/sbin/nginx"
		}
		out, err := exec.Command(nginx, "-t", "-p", filepath.Join(c.dir, "nginx"), "-c", filepath.Join(c.dir, "nginx", "nginx.conf"),
			"-e", filepath.Join(c.dir, "nginx", "error.log")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "test is successful") {
			t.Errorf("nginx -t: %v\n%s", err, out)
		}
	})

	t.Run("TLS and HTTP/2", func(t *testing.T) {
		a := c.do(t, "GET", "/healthz", "", "")
		if a.status != 200 || a.proto != "HTTP/2.0" || a.header.Get("Strict-Transport-Security") == "" {
			t.Errorf("healthz: %d over %s, HSTS %q", a.status, a.proto, a.header.Get("Strict-Transport-Security"))
		}
		if a := c.do(t, "GET", "/metrics", "", ""); a.status != 404 {
			t.Errorf("metrics through the edge: %d", a.status)
		}
	})

	t.Run("web assets are cached at the edge", func(t *testing.T) {
		first := c.do(t, "GET", "/assets/css/yolda.css", "", "")
		if first.status != 200 || !strings.Contains(first.header.Get("Content-Type"), "css") {
			t.Fatalf("asset: %d %q", first.status, first.header.Get("Content-Type"))
		}
		before := c.metric(t, "api", `yolda_http_requests_total{code="200",method="GET",route="/ (web)"}`)
		for range 3 {
			if a := c.do(t, "GET", "/assets/css/yolda.css", "", ""); a.header.Get("X-Cache") != "HIT" || a.body != first.body {
				t.Errorf("a repeated asset: X-Cache %q, same body %v", a.header.Get("X-Cache"), a.body == first.body)
			}
		}
		if after := c.metric(t, "api", `yolda_http_requests_total{code="200",method="GET",route="/ (web)"}`); after != before {
			t.Errorf("the api processes served %v cached assets again", after-before)
		}
	})

	t.Run("X-Forwarded-For from a client is ignored", func(t *testing.T) {
		rid := fmt.Sprintf("xff-%d", time.Now().UnixNano())
		a := c.do(t, "GET", "/v1/me", token, "", "X-Forwarded-For", "203.0.113.9", "X-Request-Id", rid)
		if a.status != 200 {
			t.Fatalf("me: %d %s", a.status, a.body)
		}
		// The api process logs the client address it believed.
		deadline := time.Now().Add(20 * time.Second)
		for {
			remote, found := accessLogRemote(t, c.dir, rid)
			if found {
				if remote != "127.0.0.1" {
					t.Errorf("the API took the client to be %q (the spoofed header won)", remote)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no api process logged the request")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("an oversized body is refused at the edge", func(t *testing.T) {
		before := c.metric(t, "api", `yolda_http_requests_total{code="413",method="POST",route="/v1/requests"}`)
		big := `{"notes":"` + strings.Repeat("x", 100<<10) + `"}`
		a := c.do(t, "POST", "/v1/requests", token, big)
		if a.status != 413 || a.header.Get("X-Yolda-Edge") != "nginx" || !strings.Contains(a.body, "too-large") {
			t.Errorf("100 KiB body: %d edge=%q %s", a.status, a.header.Get("X-Yolda-Edge"), a.body)
		}
		if after := c.metric(t, "api", `yolda_http_requests_total{code="413",method="POST",route="/v1/requests"}`); after != before {
			t.Errorf("an api process saw the oversized body (%v -> %v 413s)", before, after)
		}
	})

	t.Run("a burst past limit_req is refused by Nginx, not the API", func(t *testing.T) {
		series := `yolda_rate_limit_decisions_total{class="login",outcome="allowed"}`
		before := c.metric(t, "api", series)
		const n = 60
		var mu sync.Mutex
		edge, api := 0, map[int]int{}
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				a, err := c.try("POST", "/v1/auth/login", "", `{"username":"ayse","password":"wrong-password"}`)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if a.header.Get("X-Yolda-Edge") == "nginx" {
					if a.status != 429 && a.status != 503 {
						t.Errorf("edge answered %d", a.status)
					}
					edge++
				} else {
					api[a.status]++
				}
			})
		}
		wg.Wait()
		if edge < n/2 {
			t.Errorf("only %d of %d refused at the edge (rate 2/s, burst 5)", edge, n)
		}
		if api[401] != n-edge {
			t.Errorf("what reached the API was not all answered as a wrong password: %v", api)
		}
		if got := c.metric(t, "api", series) - before; int(got) != n-edge {
			t.Errorf("the api processes counted %v logins, %d passed the edge", got, n-edge)
		}
	})

	t.Run("two api processes share one rate limit", func(t *testing.T) {
		codes := map[int]int{}
		for range 16 {
			codes[c.do(t, "GET", "/v1/requests", token, "").status]++
		}
		if codes[200] != 10 || codes[429] != 6 {
			t.Errorf("16 board reads with a shared burst of 10, spread over two processes: %v", codes)
		}
		for _, n := range []string{"api-1", "api-2"} {
			if c.metric(t, n, `yolda_rate_limit_decisions_total{class="board",outcome="allowed"}`) == 0 {
				t.Errorf("%s served no board read: Nginx did not spread them", n)
			}
		}
	})

	t.Run("WebSocket through the proxy", func(t *testing.T) {
		created := c.do(t, "POST", "/v1/requests", token, request)
		if created.status != 202 {
			t.Fatalf("create: %d %s", created.status, created.body)
		}
		var r struct {
			ID string `json:"id"`
		}
		json.Unmarshal([]byte(created.body), &r)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ws, resp, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(c.base, "https")+"/v1/ws", &websocket.DialOptions{
			HTTPClient: c.client, HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
		})
		if err != nil {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			t.Fatalf("dial through nginx: %d %v", code, err)
		}
		defer ws.CloseNow()
		send := func(v any) {
			b, _ := json.Marshal(v)
			if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
				t.Fatal(err)
			}
		}
		next := func() map[string]any {
			_, b, err := ws.Read(ctx)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			var m map[string]any
			json.Unmarshal(b, &m)
			return m
		}
		send(map[string]any{"type": "subscribe", "request_id": r.ID})
		first := next()
		if first["type"] != "request.status" || first["request_id"] != r.ID {
			t.Fatalf("first message: %v", first)
		}
		if a := c.do(t, "POST", "/v1/requests/"+r.ID+"/cancel", token, `{"reason":"found help"}`); a.status != 200 {
			t.Fatalf("cancel: %d %s", a.status, a.body)
		}
		for {
			m := next()
			if m["type"] == "request.status" && m["status"] == "cancelled" {
				break
			}
		}
	})
}

// accessLogRemote finds the request id in the api processes' logs and
// returns the client address they logged for it.
func accessLogRemote(t *testing.T, dir, rid string) (string, bool) {
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "api-*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if !strings.Contains(line, `"request_id":"`+rid+`"`) || !strings.Contains(line, `"msg":"http"`) {
				continue
			}
			var m struct {
				Remote string `json:"remote"`
			}
			if json.Unmarshal([]byte(line), &m) == nil {
				return m.Remote, true
			}
		}
	}
	return "", false
}
