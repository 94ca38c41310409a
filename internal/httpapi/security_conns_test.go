package httpapi_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/httpapi"
)

// serveLimited serves f's API on a real listener wrapped by LimitConns.
func serveLimited(t *testing.T, f *fixture) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	limited, err := f.api.LimitConns(ln)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f.api, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(limited)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// probe sends GET /healthz on a new keep-alive connection and returns the
// connection (still open) with the answer's status and body.
func probe(t *testing.T, addr string) (net.Conn, int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return c, resp.StatusCode, b.String()
}

func TestConnectionCapPerAddress(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{MaxConnsPerIP: 2})
	addr := serveLimited(t, f)
	first, code1, _ := probe(t, addr)
	_, code2, _ := probe(t, addr)
	if code1 != 200 || code2 != 200 {
		t.Fatalf("within the cap: %d %d", code1, code2)
	}
	_, code, body := probe(t, addr)
	if code != 429 || !strings.Contains(body, "too-many-connections") {
		t.Errorf("third connection: %d %s", code, body)
	}
	// Closing one frees its slot (the server sees the close a moment later).
	first.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, code, _ := probe(t, addr)
		if code == 200 {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed: %d", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Behind a trusted proxy every client arrives from its address: the cap
// does not apply to it (the proxy caps clients, docs/security.md).
func TestConnectionCapSparesTrustedProxies(t *testing.T) {
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	f := setup(t, "sqlite", httpapi.Options{MaxConnsPerIP: 1, TrustedProxies: []*net.IPNet{loopback}})
	addr := serveLimited(t, f)
	for i := range 5 {
		if _, code, body := probe(t, addr); code != 200 {
			t.Fatalf("connection %d from the proxy: %d %s", i, code, body)
		}
	}
}
