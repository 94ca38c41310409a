package httpapi_test

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/web"
)

// TestWebPagesAndTheirCSP: the pages and assets are served on the API
// listener; pages carry the pages' policy (own scripts and styles only, no
// inline code, no framing), every API answer keeps the deny-all one.
func TestWebPagesAndTheirCSP(t *testing.T) {
	site, err := web.New()
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Deps{Web: site, Registry: prometheus.NewRegistry(), Ready: func(context.Context) error { return nil }})
	srv := httptest.NewServer(api)
	defer srv.Close()
	ops := httptest.NewServer(api.OpsHandler())
	defer ops.Close()

	get := func(base, path string, headers ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gzip
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	for _, page := range []struct{ path, has string }{
		{"/", "/assets/js/panel/main.js"},
		{"/driver", "/assets/js/driver/main.js"},
		{"/track/req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P", "/assets/js/track/main.js"},
	} {
		resp, body := get(srv.URL, page.path)
		if resp.StatusCode != 200 || !strings.Contains(body, page.has) {
			t.Errorf("%s: %d, want 200 with %s", page.path, resp.StatusCode, page.has)
			continue
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", page.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "http") {
			t.Errorf("%s: CSP %q allows inline code or another origin", page.path, csp)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("%s: headers %v", page.path, resp.Header)
		}
		// No inline script or style in the page itself: the CSP would
		// block it, so it would be a bug either way.
		if strings.Contains(body, "<script>") || strings.Contains(body, "<style") || strings.Contains(body, " style=") || strings.Contains(body, " on") && strings.Contains(body, "onclick=") {
			t.Errorf("%s has inline code:\n%s", page.path, body)
		}
	}

	// The API keeps its deny-all policy.
	resp, _ := get(srv.URL, "/healthz")
	if csp := resp.Header.Get("Content-Security-Policy"); csp != "default-src 'none'; frame-ancestors 'none'" {
		t.Errorf("API CSP %q", csp)
	}

	// Assets: revalidated by ETag, compressed when asked.
	resp, body := get(srv.URL, "/assets/vendor/leaflet/leaflet.js")
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || etag == "" || !strings.Contains(body, "Leaflet") || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("leaflet.js: %d %q %q", resp.StatusCode, etag, resp.Header.Get("Content-Type"))
	}
	if resp, _ := get(srv.URL, "/assets/vendor/leaflet/leaflet.js", "If-None-Match", etag); resp.StatusCode != 304 {
		t.Errorf("revalidation: %d, want 304", resp.StatusCode)
	}
	resp, zipped := get(srv.URL, "/assets/basemap/turkey.json", "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("basemap not compressed: %v", resp.Header)
	}
	zr, err := gzip.NewReader(strings.NewReader(zipped))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !strings.Contains(string(plain), `"name":"İstanbul"`) || !strings.Contains(string(plain), `"kind":"road"`) {
		t.Errorf("basemap lacks İstanbul or roads")
	}

	// Nothing else is a page: API-style 404s, and no pages on the
	// operations listener.
	for _, path := range []string{"/track/not-an-id", "/assets/nope.js", "/index.html", "/static/index.html", "/web.go"} {
		if resp, body := get(srv.URL, path); resp.StatusCode != 404 || !strings.Contains(body, `not-found"`) {
			t.Errorf("%s: %d %s, want a 404 problem", path, resp.StatusCode, body)
		}
	}
	if resp, _ := get(ops.URL, "/"); resp.StatusCode != 404 {
		t.Errorf("the operations listener serves pages: %d", resp.StatusCode)
	}
	if site.Size() > 1<<20 {
		t.Errorf("embedded web files are %d bytes: keep them under 1 MiB", site.Size())
	}
}
