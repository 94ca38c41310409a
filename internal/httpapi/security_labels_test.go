package httpapi_test

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/telemetry"
)

// seriesCount is the number of samples /metrics would print: one per
// counter or gauge series, buckets + sum + count per histogram.
func seriesCount(t testing.TB, g prometheus.Gatherer) int {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fam := range families {
		for _, m := range fam.GetMetric() {
			n++
			if h := m.GetHistogram(); h != nil {
				n += len(h.GetBucket()) + 1
			}
		}
	}
	return n
}

// TestMetricLabelFlood: no label value comes from the client unchecked.
// Thousands of made-up methods and paths, unauthenticated, must not grow
// /metrics: a second flood of new values adds no series at all.
func TestMetricLabelFlood(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{})
	rnd := rand.New(rand.NewPCG(1, 2))
	token := func(n int) string {
		const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		var b strings.Builder
		for range n {
			b.WriteByte(letters[rnd.IntN(len(letters))])
		}
		return b.String()
	}
	flood := func(n int) {
		for i := range n {
			method, path := token(20+rnd.IntN(80)), "/healthz"
			switch i % 3 {
			case 1:
				method, path = "GET", "/"+token(30)
			case 2:
				path = "/v1/" + token(10) + "/" + token(10)
			}
			req, err := http.NewRequest(method, f.srv.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 404 && resp.StatusCode != 405 {
				t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
			}
		}
	}
	f.do(t, "GET", "/healthz", "", "")
	before := seriesCount(t, f.registry)
	flood(1500)
	first := seriesCount(t, f.registry)
	flood(1500)
	second := seriesCount(t, f.registry)
	t.Logf("series: %d before, %d after 1500 made-up methods and paths, %d after 1500 more", before, first, second)
	if second != first {
		t.Errorf("a second flood of new methods and paths added %d series", second-first)
	}
	if first-before > 60 {
		t.Errorf("the flood added %d series; the closed label sets allow a few dozen", first-before)
	}
	for label, value := range map[string]string{"method": "other", "route": "unmatched"} {
		if n, err := telemetry.Sum(f.registry, "yolda_http_requests_total", map[string]string{label: value}); err != nil || n == 0 {
			t.Errorf("no requests counted under %s=%q (%v)", label, value, err)
		}
	}
}
