package connlimit_test

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/connlimit"
	"github.com/yolda/yolda/internal/telemetry"
)

// serve accepts on l until it is closed and hands over what it accepted.
func serve(t *testing.T, o connlimit.Options) (*connlimit.Listener, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := connlimit.New(ln, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return l, accepted
}

func dial(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func next(t *testing.T, accepted <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-accepted:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

// refusedWith reads what the listener told a refused client: the refusal,
// then the end of the connection.
func refusedWith(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("refused connection: %v (read %q)", err, b)
	}
	return string(b)
}

func TestCapPerAddress(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, accepted := serve(t, connlimit.Options{PerAddr: 3, Registerer: reg,
		Refuse: func(c net.Conn) { _, _ = io.WriteString(c, "busy\n") }})
	var held []net.Conn
	for range 3 {
		dial(t, l)
		held = append(held, next(t, accepted))
	}
	loopback := netip.MustParseAddr("127.0.0.1")
	if n := l.Open(loopback); n != 3 {
		t.Errorf("open for 127.0.0.1: %d, want 3", n)
	}
	// The fourth is refused and never reaches the server.
	if got := refusedWith(t, dial(t, l)); got != "busy\n" {
		t.Errorf("fourth connection got %q", got)
	}
	select {
	case c := <-accepted:
		t.Fatalf("a connection over the cap was accepted: %v", c.RemoteAddr())
	default:
	}
	// Closing one (twice: the slot comes back once) lets the next in.
	held[0].Close()
	held[0].Close()
	dial(t, l)
	next(t, accepted)
	if n := l.Open(loopback); n != 3 {
		t.Errorf("open after one closed and one came: %d, want 3", n)
	}
	if got := refusedWith(t, dial(t, l)); got != "busy\n" {
		t.Errorf("over the cap again: %q", got)
	}
	if n, _ := telemetry.Sum(reg, "yolda_http_connections_refused_total", nil); n != 2 {
		t.Errorf("refused_total %v, want 2", n)
	}
	if n, _ := telemetry.Sum(reg, "yolda_http_open_connections", nil); n != 3 {
		t.Errorf("open_connections %v, want 3", n)
	}
	for _, c := range held[1:] {
		c.Close()
	}
}

// A trusted proxy's address carries every client: it is not capped.
func TestExemptProxy(t *testing.T) {
	l, accepted := serve(t, connlimit.Options{PerAddr: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	for range 10 {
		dial(t, l)
		next(t, accepted)
	}
}

func TestNoCap(t *testing.T) {
	l, accepted := serve(t, connlimit.Options{})
	for range 10 {
		dial(t, l)
		next(t, accepted)
	}
}
