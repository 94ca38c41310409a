package rest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/rest"
)

// answer starts an insurer that answers every call with status and body,
// and returns an adapter for it and the requests it saw.
func answer(t *testing.T, status int, body string, auth insurance.Auth) (*rest.Adapter, chan *http.Request, chan []byte) {
	t.Helper()
	reqs, bodies := make(chan *http.Request, 1), make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs <- r
		bodies <- b
		w.Header().Set("Location", "/elsewhere")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	cfg := insurance.Config{Code: "acme", BaseURL: srv.URL + "/api/", Auth: auth}.Default()
	a, err := rest.New(cfg, rest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, reqs, bodies
}

var q = insurance.Query{
	PolicyNumber: "POL-123456", Plate: "34ABC123", ServiceType: "tow",
	IncidentAt: time.Date(2026, 11, 26, 13, 0, 0, 0, time.FixedZone("TRT", 3*3600)),
}

func TestRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		auth insurance.Auth
		want string // the Authorization or X-Api-Key header
	}{
		{insurance.Auth{}, ""},
		{insurance.Auth{Header: "Authorization", Scheme: "Bearer", ValueEnv: "T", Value: insurance.NewSecret("tok")}, "Bearer tok"},
		{insurance.Auth{Header: "X-Api-Key", ValueEnv: "T", Value: insurance.NewSecret("key")}, "key"},
	}
	for _, tt := range tests {
		a, reqs, bodies := answer(t, 200, `{"covered": true}`, tt.auth)
		if _, err := a.Verify(context.Background(), q); err != nil {
			t.Fatal(err)
		}
		r, body := <-reqs, <-bodies
		if r.Method != http.MethodPost || r.URL.Path != "/api/policies/verify" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		header := tt.auth.Header
		if header == "" {
			header = "Authorization"
		}
		if got := r.Header.Get(header); got != tt.want {
			t.Errorf("%s = %q, want %q", header, got, tt.want)
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"policy_number": "POL-123456", "plate": "34ABC123", "service_type": "tow", "incident_at": "2026-11-26T10:00:00Z"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("body (-want +got):\n%s", diff)
		}
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		want   insurance.Verdict // Raw is checked apart
		err    error             // sentinel, or nil
	}{
		{"covered", 200, `{"covered": true, "reference": "r-1", "coverage": {"max_tow_km": 100, "services": ["tow", "winch"]}, "reason": null}`,
			insurance.Verdict{Covered: true, Reference: "r-1", Coverage: &insurance.Coverage{MaxTowKm: 100, Services: []string{"tow", "winch"}},
				CoverageDocument: json.RawMessage(`{"max_tow_km": 100, "services": ["tow", "winch"]}`)}, nil},
		// The document is kept byte for byte, fields Yolda does not read
		// and spacing included; the terms are read from it.
		{"coverage as received", 200, `{"covered":true,"coverage":{ "services" : ["tow"],"deductible_try":500 }}`,
			insurance.Verdict{Covered: true, Coverage: &insurance.Coverage{Services: []string{"tow"}},
				CoverageDocument: json.RawMessage(`{ "services" : ["tow"],"deductible_try":500 }`)}, nil},
		{"not covered", 200, `{"covered": false, "reference": "r-2", "coverage": null, "reason": "policy lapsed"}`,
			insurance.Verdict{Reference: "r-2", Reason: "policy lapsed"}, nil},
		{"only covered", 200, `{"covered": false}`, insurance.Verdict{}, nil},
		{"unknown fields tolerated", 200, `{"covered": true, "valid_until": "2027-01-01"}`, insurance.Verdict{Covered: true}, nil},
		{"201", 201, `{"covered": true}`, insurance.Verdict{Covered: true}, nil},

		{"covered missing", 200, `{"reference": "r"}`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"covered null", 200, `{"covered": null}`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"covered a string", 200, `{"covered": "yes"}`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"reference a number", 200, `{"covered": true, "reference": 42}`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"coverage a list", 200, `{"covered": true, "coverage": ["tow"]}`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"max_tow_km a string", 200, `{"covered": true, "coverage": {"max_tow_km": "100"}}`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"max_tow_km fractional", 200, `{"covered": true, "coverage": {"max_tow_km": 1.5}}`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"max_tow_km negative", 200, `{"covered": true, "coverage": {"max_tow_km": -1}}`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"services not strings", 200, `{"covered": true, "coverage": {"services": [1, 2]}}`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"an array", 200, `[{"covered": true}]`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"null", 200, `null`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"empty", 200, ``, insurance.Verdict{}, insurance.ErrBadPayload},
		{"html", 200, `<html><body>Service Unavailable</body></html>`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"truncated", 200, `{"covered": tr`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"trailing data", 200, `{"covered": true} {"covered": false}`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"too large", 200, `{"covered": true, "reason": "` + strings.Repeat("x", 1<<20) + `"}`, insurance.Verdict{}, insurance.ErrBadPayload},
		{"redirect", 302, ``, insurance.Verdict{}, insurance.ErrBadPayload},

		{"500", 500, `oops`, insurance.Verdict{}, insurance.ErrServer},
		{"503", 503, ``, insurance.Verdict{}, insurance.ErrServer},
		{"429", 429, ``, insurance.Verdict{}, insurance.ErrServer},
		{"400", 400, `{"error": "bad plate"}`, insurance.Verdict{}, insurance.ErrClient},
		{"401", 401, ``, insurance.Verdict{}, insurance.ErrClient},
		{"404", 404, ``, insurance.Verdict{}, insurance.ErrClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, _, _ := answer(t, tt.status, tt.body, insurance.Auth{})
			v, err := a.Verify(context.Background(), q)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				if len(err.Error()) > 400 {
					t.Errorf("error message of %d bytes; bodies must be cut short", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(v.Raw) != tt.body {
				t.Errorf("Raw = %s, want the body as received", v.Raw)
			}
			v.Raw = nil
			if diff := cmp.Diff(tt.want, v); diff != "" {
				t.Errorf("verdict (-want +got):\n%s", diff)
			}
		})
	}
}

// The context bounds the whole call, body included.
func TestVerifyHonoursContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		io.WriteString(w, `{"covered": `)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	a, err := rest.New(insurance.Config{Code: "acme", BaseURL: srv.URL}.Default(), rest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err = a.Verify(ctx, q)
	if took := time.Since(t0); took > time.Second || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Verify = %v after %s; want the deadline, on time", err, took)
	}
	if insurance.Kind(err) != insurance.KindTimeout {
		t.Errorf("Kind = %q, want timeout", insurance.Kind(err))
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	t.Parallel()
	if _, err := rest.New(insurance.Config{Code: "acme", BaseURL: "not a url"}.Default(), rest.Options{}); err == nil {
		t.Error("New accepted a bad base_url")
	}
	f := rest.Factory(rest.Options{HTTPClient: http.DefaultClient})
	if a, err := f(insurance.Config{Code: "acme", BaseURL: "http://x"}.Default()); err != nil || a == nil {
		t.Errorf("Factory = %v, %v", a, err)
	}
}
