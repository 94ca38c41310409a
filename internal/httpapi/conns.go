package httpapi

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"github.com/yolda/yolda/internal/connlimit"
)

// LimitConns wraps the API listener so that one client address keeps at
// most Options.MaxConnsPerIP connections open. Trusted proxies are exempt:
// behind one, every client shares its address, and the proxy caps clients
// itself (docs/security.md). A connection over the cap is answered 429 and
// closed before any request on it is read.
func (s *Server) LimitConns(ln net.Listener) (net.Listener, error) {
	var exempt []netip.Prefix
	for _, n := range s.opts.TrustedProxies {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ones, _ := n.Mask.Size()
		if ip.Is4In6() {
			ip, ones = ip.Unmap(), ones-96
		}
		exempt = append(exempt, netip.PrefixFrom(ip, ones))
	}
	refusal := connRefusal()
	l, err := connlimit.New(ln, connlimit.Options{
		PerAddr: s.opts.MaxConnsPerIP, Exempt: exempt, Registerer: s.registry,
		Refuse: func(c net.Conn) { _, _ = c.Write(refusal) },
	})
	if err != nil {
		return nil, fmt.Errorf("connection limit: %w", err)
	}
	return l, nil
}

// connRefusal is the whole HTTP answer written to a connection over its
// address's cap.
func connRefusal() []byte {
	p := newProblem(http.StatusTooManyRequests, "too-many-connections", "Too many connections",
		"This address holds the most connections allowed; reuse one or retry shortly.")
	body, _ := json.Marshal(p)
	return fmt.Appendf(nil, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/problem+json\r\n"+
		"Retry-After: 1\r\nConnection: close\r\nX-Content-Type-Options: nosniff\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}
