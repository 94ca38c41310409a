package resilient_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/configfile"
	"github.com/yolda/yolda/internal/insurance/resilient"
	"github.com/yolda/yolda/internal/insurance/rest"
)

// The composition root loads the insurers file, builds one client per
// insurer with the adapters it knows, and the worker calls Verify.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"covered": true, "reference": "chk-7", "coverage": {"max_tow_km": 100, "services": ["tow"]}}`)
	}))
	defer srv.Close()

	file := []byte(`
insurers:
  - code: anadolu
    name: Anadolu Sigorta
    base_url: ` + srv.URL + `
    auth: {header: Authorization, scheme: Bearer, value_env: ANADOLU_TOKEN}
`)
	getenv := func(name string) string { return map[string]string{"ANADOLU_TOKEN": "s3cret"}[name] }
	cfgs, err := configfile.Parse(file, getenv) // LoadFile(os.Getenv("YOLDA_INSURERS_FILE"), getenv) in real life
	if err != nil {
		fmt.Println(err)
		return
	}
	insurers, err := resilient.NewClients(cfgs,
		map[string]insurance.Factory{rest.Name: rest.Factory(rest.Options{})},
		resilient.Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer insurers.Close()

	client, _ := insurers.Get("anadolu")
	v, err := client.Verify(context.Background(), insurance.Query{
		PolicyNumber: "POL-123456", Plate: "34ABC123", ServiceType: "tow", IncidentAt: time.Now(),
	})
	switch {
	case err != nil && insurance.Kind(err) == insurance.KindClient:
		fmt.Println("manual review:", err)
	case err != nil:
		fmt.Println("try again later:", insurance.Kind(err))
	default:
		fmt.Println(v.Covered, v.Reference, v.Coverage.MaxTowKm)
	}
	fmt.Println(client.Health().Breaker)
	// Output:
	// true chk-7 100
	// closed
}
