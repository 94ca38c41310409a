package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/yolda/yolda/internal/httpapi"
)

// TestSecurityHeadersOnEveryAnswer: success, problem, router answers and
// the operations listener all carry nosniff and a CSP that forbids
// framing.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{MaxBodyBytes: 2048})
	cases := []struct {
		name                     string
		method, path, user, body string
		status                   int
	}{
		{"ok", "GET", "/v1/requests", "ayse", "", 200},
		{"accepted", "POST", "/v1/requests", "ayse", validBody, 202},
		{"invalid", "POST", "/v1/requests", "ayse", `{}`, 422},
		{"too large", "POST", "/v1/requests", "ayse", `{"notes":"` + strings.Repeat("x", 4096) + `"}`, 413},
		{"no token", "GET", "/v1/requests", "", "", 401},
		{"forbidden", "POST", "/v1/requests", "driver", validBody, 403},
		{"not found", "GET", "/nowhere", "", "", 404},
		{"method", "DELETE", "/healthz", "", "", 405},
		{"health", "GET", "/healthz", "", "", 200},
		{"openapi", "GET", "/openapi.json", "", "", 200},
	}
	for _, tc := range cases {
		a := f.do(t, tc.method, tc.path, tc.user, tc.body)
		if a.status != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, a.status, tc.status)
		}
		checkSecurityHeaders(t, tc.name, a)
	}
	checkSecurityHeaders(t, "ops metrics", get(t, f.ops.URL+"/metrics"))
}

func checkSecurityHeaders(t *testing.T, name string, a answer) {
	t.Helper()
	if got := a.header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", name, got)
	}
	csp := a.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("%s: Content-Security-Policy %q", name, csp)
	}
}

// get fetches a URL outside the fixture's server (the operations handler).
func get(t testing.TB, url string) answer {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}
