// Package connlimit caps the connections that one client address may hold
// open on a listener. Every open connection costs a goroutine, buffers and
// a file descriptor whatever it sends; without a cap, one machine can hold
// them all (slow headers, slow bodies, idle keep-alives) and nobody else
// gets in.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/telemetry"
)

// Options configure a Listener.
type Options struct {
	// PerAddr is the most connections one address may hold open; 0 is no
	// cap. IPv6 addresses count per /64, the block one subscriber gets.
	PerAddr int
	// Exempt peers are not capped: trusted reverse proxies, whose one
	// address carries every client (cap clients at the proxy instead).
	Exempt []netip.Prefix
	// Refuse, if set, writes a short answer to a connection over the cap
	// before it is closed. It runs in Accept under a write deadline of
	// RefuseTimeout, so that it cannot hold up other clients.
	Refuse func(c net.Conn)
	// Registerer receives yolda_http_open_connections and
	// yolda_http_connections_refused_total; nil registers none.
	Registerer prometheus.Registerer
}

// RefuseTimeout bounds the writing of a refusal.
const RefuseTimeout = 100 * time.Millisecond

// Listener is a net.Listener that refuses a client's connections beyond
// Options.PerAddr.
type Listener struct {
	net.Listener
	opts    Options
	open    prometheus.Gauge
	refused prometheus.Counter

	mu    sync.Mutex
	count map[netip.Addr]int
}

// New wraps ln.
func New(ln net.Listener, o Options) (*Listener, error) {
	r := telemetry.NewRegistrar(o.Registerer)
	l := &Listener{
		Listener: ln,
		opts:     o,
		count:    map[netip.Addr]int{},
		open: telemetry.Reuse(r, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "yolda_http_open_connections", Help: "Client connections open on the API listener.",
		})),
		refused: telemetry.Reuse(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "yolda_http_connections_refused_total", Help: "Connections closed at once because their address held the most allowed.",
		})),
	}
	return l, r.Err()
}

// Accept returns the next connection within its address's cap; the ones
// over it are refused and closed here, never returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, capped := l.key(c.RemoteAddr())
		if !capped {
			l.open.Inc()
			return &conn{Conn: c, release: l.open.Dec}, nil
		}
		if l.acquire(key) {
			l.open.Inc()
			return &conn{Conn: c, release: func() { l.release(key) }}, nil
		}
		l.refused.Inc()
		if l.opts.Refuse != nil {
			_ = c.SetWriteDeadline(time.Now().Add(RefuseTimeout))
			l.opts.Refuse(c)
		}
		_ = c.Close()
	}
}

// Open is the number of connections addr holds (for tests and reports).
func (l *Listener) Open(addr netip.Addr) int {
	k, _ := l.keyOf(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count[k]
}

// key is what a peer counts under, and whether it is capped at all.
func (l *Listener) key(a net.Addr) (netip.Addr, bool) {
	if l.opts.PerAddr <= 0 {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		// Not an IP peer (a unix socket): nothing to tell clients apart by.
		return netip.Addr{}, false
	}
	return l.keyOf(ap.Addr())
}

func (l *Listener) keyOf(addr netip.Addr) (netip.Addr, bool) {
	addr = addr.Unmap()
	for _, p := range l.opts.Exempt {
		if p.Contains(addr) {
			return netip.Addr{}, false
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		addr = p.Addr()
	}
	return addr, true
}

func (l *Listener) acquire(k netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count[k] >= l.opts.PerAddr {
		return false
	}
	l.count[k]++
	return true
}

func (l *Listener) release(k netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count[k]--
	l.open.Dec()
	if l.count[k] <= 0 {
		delete(l.count, k) // the map holds only addresses with open connections
	}
}

// conn gives its slot back once, however often it is closed.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
