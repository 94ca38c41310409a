package httpapi_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/telemetry"
)

// TestSlowBodiesDoNotHoldTheBudget: with 50 slots in flight, 60
// connections that send a request body one byte at a time do not make
// anyone else's request fail, and are cut off with 408 once the body read
// deadline passes. (Before: the slow ones held every slot until the read
// timeout and everybody else got 503.)
func TestSlowBodiesDoNotHoldTheBudget(t *testing.T) {
	const slow = 60
	timeout := 2 * time.Second
	f := setup(t, "sqlite", httpapi.Options{MaxInFlight: 50, BodyReadTimeout: timeout, UserRate: 0})
	addr := strings.TrimPrefix(f.srv.URL, "http://")

	type result struct {
		status int
		took   time.Duration
		err    error
	}
	results := make(chan result, slow)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer conn.Close()
			start := time.Now()
			fmt.Fprintf(conn, "POST /v1/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
				f.tokens["ayse"], len(validBody))
			// One byte now and one every 200 ms: never the whole body
			// within the deadline.
			go func() {
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				for i := 0; i < len(validBody); i++ {
					if _, err := conn.Write([]byte{validBody[i]}); err != nil {
						return
					}
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			// Generous: the old code never answers while bytes keep coming.
			_ = conn.SetReadDeadline(time.Now().Add(timeout + 20*time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				results <- result{err: err, took: time.Since(start)}
				return
			}
			resp.Body.Close()
			results <- result{status: resp.StatusCode, took: time.Since(start)}
		}()
	}
	// Wait until the server has seen all of them (held, or refused).
	deadline := time.Now().Add(20 * time.Second)
	for {
		held, _ := telemetry.Sum(f.registry, "yolda_http_in_flight_requests", nil)
		shed, _ := telemetry.Sum(f.registry, "yolda_http_shed_total", nil)
		if n := held + shed; n >= slow {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %v slow requests arrived", held+shed)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Everyone else is served while the slow ones trickle.
	for i := range 10 {
		if a := f.do(t, "GET", "/v1/requests", "mehmet", ""); a.status != 200 {
			t.Errorf("list %d during the slow bodies: %d %s", i, a.status, a.body)
		}
		if a := f.do(t, "POST", "/v1/requests", "mehmet", validBody); a.status != 202 {
			t.Errorf("create %d during the slow bodies: %d %s", i, a.status, a.body)
		}
	}
	codes := map[int]int{}
	var longest time.Duration
	for range slow {
		r := <-results
		if r.err != nil {
			t.Errorf("slow request: %v after %s", r.err, r.took)
			continue
		}
		codes[r.status]++
		longest = max(longest, r.took)
	}
	close(stop)
	wg.Wait()
	t.Logf("slow bodies answered %v, the last after %s (deadline %s)", codes, longest, timeout)
	if codes[408] != slow {
		t.Errorf("slow bodies answered %v, want %d x 408", codes, slow)
	}
	if n, _ := telemetry.Sum(f.registry, "yolda_http_body_timeouts_total", nil); n != slow {
		t.Errorf("yolda_http_body_timeouts_total = %v, want %d", n, slow)
	}
}
