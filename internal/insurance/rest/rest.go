// Package rest is the reference insurer adapter: a configurable JSON-over-
// HTTP client for insurers that speak Yolda's reference API,
//
//	POST {base_url}/policies/verify
//	{"policy_number", "plate", "service_type", "incident_at"}
//	-> {"covered", "reference", "coverage": {"max_tow_km", "services"}, "reason"}
//
// with an optional authentication header from the insurers file. It makes
// one attempt per call; retries, the breaker and the bulkhead are the
// resilient.Client's.
package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/insurance"
)

// Name is the adapter's name in the insurers file (adapter: rest).
const Name = "rest"

// maxBody caps what is read of an answer; more is a bad payload.
const maxBody = 1 << 20

// Adapter calls one insurer. Safe for concurrent use.
type Adapter struct {
	url    string
	http   *http.Client
	owned  bool // http is ours: Close closes its idle connections
	header string
	value  string // the header's value, secret included
}

var _ insurance.Adapter = (*Adapter)(nil)

// Options tune the adapter; the zero value is fine.
type Options struct {
	// HTTPClient, if set, is used instead of the adapter's own (pooled to
	// the insurer's bulkhead, no redirects, no overall timeout: the
	// context bounds each call).
	HTTPClient *http.Client
}

// Factory returns the insurance.Factory for the rest adapter, for
// resilient.NewClients(cfgs, map[string]insurance.Factory{rest.Name: rest.Factory(opts)}, ...).
func Factory(opts Options) insurance.Factory {
	return func(cfg insurance.Config) (insurance.Adapter, error) { return New(cfg, opts) }
}

// New builds the adapter of the insurer cfg describes.
func New(cfg insurance.Config, opts Options) (*Adapter, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("base_url: want an absolute http(s) URL, got %q", cfg.BaseURL)
	}
	a := &Adapter{
		url:    base.JoinPath("policies", "verify").String(),
		http:   opts.HTTPClient,
		header: cfg.Auth.Header,
		value:  cfg.Auth.Value.Reveal(),
	}
	if cfg.Auth.Scheme != "" {
		a.value = cfg.Auth.Scheme + " " + a.value
	}
	if a.http == nil {
		a.owned = true
		a.http = &http.Client{
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				ForceAttemptHTTP2:     true,
				MaxIdleConns:          max(cfg.Bulkhead, 2),
				MaxIdleConnsPerHost:   max(cfg.Bulkhead, 2),
				MaxConnsPerHost:       cfg.Bulkhead, // the bulkhead's, plus none
				IdleConnTimeout:       90 * time.Second,
				TLSHandshakeTimeout:   5 * time.Second,
				ExpectContinueTimeout: time.Second,
			},
			// A redirect of a POST turns into a GET elsewhere: an error.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return a, nil
}

// Close closes the adapter's idle connections (if it made its client).
func (a *Adapter) Close() error {
	if a.owned {
		a.http.CloseIdleConnections()
	}
	return nil
}

type request struct {
	PolicyNumber string `json:"policy_number"`
	Plate        string `json:"plate"`
	ServiceType  string `json:"service_type"`
	IncidentAt   string `json:"incident_at"`
}

// response is the answer; pointers tell a missing field from a zero one.
// Coverage is kept as it came, and read apart.
type response struct {
	Covered   *bool           `json:"covered"`
	Reference *string         `json:"reference"`
	Coverage  json.RawMessage `json:"coverage"`
	Reason    *string         `json:"reason"`
}

type coverage struct {
	MaxTowKm *int     `json:"max_tow_km"`
	Services []string `json:"services"`
}

// Verify makes one call. Errors wrap insurance.ErrServer (5xx, 429),
// insurance.ErrClient (other 4xx) or insurance.ErrBadPayload (anything but
// the documented answer); transport errors are returned as they are.
func (a *Adapter) Verify(ctx context.Context, q insurance.Query) (insurance.Verdict, error) {
	body, err := json.Marshal(request{
		PolicyNumber: q.PolicyNumber,
		Plate:        q.Plate,
		ServiceType:  q.ServiceType,
		IncidentAt:   q.IncidentAt.UTC().Format(time.RFC3339),
	})
	if err != nil {
		return insurance.Verdict{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return insurance.Verdict{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "yolda")
	if a.header != "" {
		req.Header.Set(a.header, a.value)
	}

	resp, err := a.http.Do(req)
	if err != nil {
		return insurance.Verdict{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return insurance.Verdict{}, fmt.Errorf("read answer: %w", err)
	}

	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests || code >= 500:
		return insurance.Verdict{}, fmt.Errorf("%w: status %d%s", insurance.ErrServer, code, snippet(raw))
	case code >= 400:
		return insurance.Verdict{}, fmt.Errorf("%w: status %d%s", insurance.ErrClient, code, snippet(raw))
	case code < 200 || code >= 300:
		return insurance.Verdict{}, fmt.Errorf("%w: unexpected status %d", insurance.ErrBadPayload, code)
	}
	if len(raw) > maxBody {
		return insurance.Verdict{}, fmt.Errorf("%w: answer larger than %d bytes", insurance.ErrBadPayload, maxBody)
	}
	v, err := decode(raw)
	if err != nil {
		return insurance.Verdict{}, fmt.Errorf("%w: %v%s", insurance.ErrBadPayload, err, snippet(raw))
	}
	return v, nil
}

// decode reads the answer strictly: one JSON object, "covered" a boolean,
// every other field of its documented type or null. Fields it does not know
// are ignored, so an insurer may add some.
func decode(raw []byte) (insurance.Verdict, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var r response
	if err := dec.Decode(&r); err != nil {
		return insurance.Verdict{}, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return insurance.Verdict{}, errors.New("data after the JSON object")
	}
	if r.Covered == nil {
		return insurance.Verdict{}, errors.New(`"covered" is missing or null`)
	}
	v := insurance.Verdict{Covered: *r.Covered, Raw: json.RawMessage(raw)}
	if r.Reference != nil {
		v.Reference = *r.Reference
	}
	if r.Reason != nil {
		v.Reason = *r.Reason
	}
	if len(r.Coverage) > 0 && string(r.Coverage) != "null" {
		var c coverage
		if err := json.Unmarshal(r.Coverage, &c); err != nil {
			return insurance.Verdict{}, fmt.Errorf(`"coverage": %w`, err)
		}
		if c.MaxTowKm != nil && *c.MaxTowKm < 0 {
			return insurance.Verdict{}, fmt.Errorf(`"coverage.max_tow_km" is negative: %d`, *c.MaxTowKm)
		}
		v.Coverage = &insurance.Coverage{Services: c.Services}
		if c.MaxTowKm != nil {
			v.Coverage.MaxTowKm = *c.MaxTowKm
		}
		v.CoverageDocument = r.Coverage // a copy: the decoder does not keep raw
	}
	return v, nil
}

// snippet quotes the start of a body for an error message.
func snippet(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return ""
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return fmt.Sprintf(" (body %q)", s)
}
