package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// clients are the run's HTTP and WebSocket plumbing: one pooled client
// for the REST calls, and WebSocket dials spread over the local
// addresses.
type clients struct {
	base   string
	wsURL  string
	rest   *http.Client
	dialer []*http.Client // one per local address
	next   atomic.Uint64
	errs   *errorCounts
	open   atomic.Int64
	peak   atomic.Int64
}

func newClients(o Options, errs *errorCounts) *clients {
	base := strings.TrimRight(o.BaseURL, "/")
	c := &clients{base: base, wsURL: "ws" + strings.TrimPrefix(base, "http") + "/v1/ws", errs: errs}
	c.rest = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute,
	}}
	addrs := o.LocalAddrs
	if len(addrs) == 0 {
		addrs = []string{""}
	}
	for _, a := range addrs {
		d := &net.Dialer{Timeout: 10 * time.Second}
		if a != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(a)}
		}
		c.dialer = append(c.dialer, &http.Client{Transport: &http.Transport{DialContext: d.DialContext}})
	}
	return c
}

// call makes a REST call; out, if set, takes the JSON answer. It returns
// the status code (0 if no answer came).
func (c *clients) call(ctx context.Context, method, path, token string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.rest.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 300 && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// expect is call that counts what went wrong by kind ("accept 409") and
// reports whether the answer was want.
func (c *clients) expect(ctx context.Context, kind string, want int, method, path, token string, body, out any) bool {
	code, err := c.call(ctx, method, path, token, body, out)
	switch {
	case err != nil && ctx.Err() != nil:
		return false
	case err != nil:
		c.errs.add(kind + " error")
		return false
	case code != want:
		c.errs.add(fmt.Sprintf("%s %d", kind, code))
		return false
	}
	return true
}

// socket is one WebSocket connection of the simulator.
type socket struct {
	ws *websocket.Conn
	mu sync.Mutex // writes
	c  *clients
}

// dial opens a WebSocket for token.
func (c *clients) dial(ctx context.Context, token string) (*socket, error) {
	hc := c.dialer[c.next.Add(1)%uint64(len(c.dialer))]
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, c.wsURL, &websocket.DialOptions{
		HTTPClient: hc, HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
	})
	if err != nil {
		kind := "ws dial"
		if resp != nil {
			kind = fmt.Sprintf("ws dial %d", resp.StatusCode)
		}
		c.errs.add(kind)
		return nil, err
	}
	ws.SetReadLimit(64 << 10)
	n := c.open.Add(1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return &socket{ws: ws, c: c}, nil
}

// send writes one message; a failure is counted, and ends the socket.
func (s *socket) send(ctx context.Context, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.ws.Write(wctx, websocket.MessageText, b); err != nil {
		if ctx.Err() == nil {
			s.c.errs.add("ws write")
		}
		return false
	}
	return true
}

// inbound is any message the server sends, with the fields the simulator
// reads.
type inbound struct {
	Type      string    `json:"type"`
	RequestID string    `json:"request_id"`
	Status    string    `json:"status"`
	Seq       int       `json:"seq"`
	OfferID   string    `json:"offer_id"`
	DriverID  string    `json:"driver_id"`
	At        time.Time `json:"at"`
	Message   string    `json:"message"`
	Location  struct {
		Lat float64 `json:"lat"`
		Lng float64 `json:"lng"`
	} `json:"location"`
}

// read calls handle for every message until the socket ends; it counts
// an end the run did not ask for.
func (s *socket) read(ctx context.Context, handle func(inbound)) {
	defer s.c.open.Add(-1)
	for {
		_, data, err := s.ws.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				kind := "ws closed"
				if code := websocket.CloseStatus(err); code != -1 {
					kind = fmt.Sprintf("ws closed %d", code)
				}
				s.c.errs.add(kind)
			}
			return
		}
		var m inbound
		if err := json.Unmarshal(data, &m); err != nil {
			s.c.errs.add("ws message not JSON")
			continue
		}
		if m.Type == "error" {
			s.c.errs.add("ws error: " + m.Message)
		}
		handle(m)
	}
}

func (s *socket) close() { _ = s.ws.Close(websocket.StatusNormalClosure, "simulation over") }

// errorCounts counts errors by kind.
type errorCounts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (e *errorCounts) add(kind string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]int64{}
	}
	e.m[kind]++
}

func (e *errorCounts) snapshot() (map[string]int64, int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.m))
	var total int64
	for k, v := range e.m {
		out[k] = v
		total += v
	}
	return out, total
}
