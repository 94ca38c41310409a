package httpapi_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/httpapi"
)

// BenchmarkNotFoundTiming measures the two ways of getting 404 from
// GET /v1/requests/{id}: an id that does not exist and another customer's
// request. They should cost the same, so that timing does not tell an
// attacker which ids exist. It reports medians and asserts nothing (timing
// on a shared machine is not a test):
//
//	go test -run '^$' -bench NotFoundTiming ./internal/httpapi/
func BenchmarkNotFoundTiming(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			f := setup(b, engine, httpapi.Options{})
			created := f.do(b, "POST", "/v1/requests", "ayse", validBody)
			if created.status != http.StatusAccepted {
				b.Fatalf("create: %d %s", created.status, created.body)
			}
			foreign := "/v1/requests/" + created.json(b)["id"].(string)
			missing := "/v1/requests/req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P"
			var times [2][]time.Duration
			for i := 0; b.Loop(); i++ {
				path := foreign
				if i%2 == 1 {
					path = missing
				}
				start := time.Now()
				if a := f.do(b, "GET", path, "mehmet", ""); a.status != http.StatusNotFound {
					b.Fatalf("%s: %d", path, a.status)
				}
				times[i%2] = append(times[i%2], time.Since(start))
			}
			b.ReportMetric(median(times[0]), "µs-foreign")
			b.ReportMetric(median(times[1]), "µs-missing")
		})
	}
}

func median(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return float64(ds[len(ds)/2].Microseconds())
}
