package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/app"
	"github.com/yolda/yolda/internal/loadgen"
)

// TestBenchPipeline runs `yolda bench pipeline` for one short step against
// a real server on each engine: its drivers are online where it put them,
// every sampled request is looked up, and what it reads from the database
// (first offers, the outbox) is what the server wrote. The verdict depends
// on the machine, so it is not asserted.
func TestBenchPipeline(t *testing.T) {
	for name, newEnv := range engines(t) {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t).with("YOLDA_OFFER_TIMEOUT=1s", "YOLDA_DISPATCH_RADII_KM=10", "YOLDA_DRIVER_STALE_AFTER=1h",
				"YOLDA_MAX_CONNS_PER_IP=0")
			if out, err := e.run(t, "users", "add", "--role", "customer", "--username", "bench", "--password", "bench-password"); err != nil {
				t.Fatalf("users add: %v %s", err, out)
			}
			if out, err := e.run(t, "users", "add", "--role", "operator", "--username", "operator1", "--password", "op-password"); err != nil {
				t.Fatalf("users add: %v %s", err, out)
			}
			in := e.start(t)
			const drivers, rate = 60, 10
			args := []string{"bench", "pipeline", "-url", in.url(""), "-ops-urls", in.ops,
				"-rates", fmt.Sprint(rate), "-step", "1s", "-bisect", "0", "-warmup", "0s", "-settle", "0s", "-settle-timeout", "30s",
				"-drivers", fmt.Sprint(drivers), "-label", "e2e-" + name}
			out, err := e.run(t, args...)
			if err != nil {
				t.Fatalf("bench pipeline: %v\n%s", err, out)
			}
			for _, want := range []string{
				fmt.Sprintf("%d drivers online", drivers),
				fmt.Sprintf("step %6d/s", rate),
				fmt.Sprintf("(%d sampled", rate), // every arrival of a small step is looked up
				"| e2e-" + name + " | ",
				"Sustained:",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}

			// The drivers are online, each at a position over İstanbul.
			op := login(t, in, "operator1", "op-password")
			code, b := get(t, in, op, "/v1/drivers?availability=online&limit=500")
			var list struct {
				Items []struct {
					Username string `json:"username"`
					Position *struct {
						Lat, Lng float64
					} `json:"position"`
				} `json:"items"`
			}
			if err := json.Unmarshal(b, &list); code != http.StatusOK || err != nil {
				t.Fatalf("list drivers: %d %v %s", code, err, b)
			}
			if len(list.Items) != drivers {
				t.Errorf("%d drivers online, want %d", len(list.Items), drivers)
			}
			a := loadgen.Istanbul
			for _, d := range list.Items {
				if p := d.Position; !strings.HasPrefix(d.Username, "bench-driver-") || p == nil ||
					p.Lat < a.MinLat || p.Lat > a.MaxLat || p.Lng < a.MinLng || p.Lng > a.MaxLng {
					t.Errorf("driver %s at %+v: want a bench driver over İstanbul", d.Username, p)
				}
			}

			// Every request the step sent gets its first offer (60 drivers
			// over the city, one request in reach of several), and the
			// benchmark's reader sees it, a little after the request.
			code, b = get(t, in, login(t, in, "bench", "bench-password"), "/v1/requests?limit=500")
			var reqs struct {
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
			}
			if err := json.Unmarshal(b, &reqs); code != http.StatusOK || err != nil {
				t.Fatalf("list requests: %d %v %s", code, err, b)
			}
			ids := make([]string, len(reqs.Items))
			for i, r := range reqs.Items {
				ids[i] = r.ID
			}
			if len(ids) != rate {
				t.Fatalf("%d requests stored, want %d", len(ids), rate)
			}
			var offers map[string]time.Duration
			var outbox int64
			until(t, time.Minute, func() bool {
				offers, outbox, err = app.BenchFirstOffers(t.Context(), e.dataDir, e.databaseURL, ids)
				return err == nil && len(offers) == len(ids) && outbox == 0
			}, func() string {
				return fmt.Sprintf("%d of %d requests with an offer, %d outbox rows (err %v)", len(offers), len(ids), outbox, err)
			})
			for id, d := range offers {
				if d < 0 || d > time.Minute {
					t.Errorf("request %s: first offer %v after it, want within a minute", id, d)
				}
			}
		})
	}
}
