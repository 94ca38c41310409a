package httpapi_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/yolda/yolda/internal/httpapi"
)

// TestOpenAPIMatchesRoutes proves both directions: every documented
// operation is served (it never gets the router's 404/405), and every
// operation the contract requires of this build is documented.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{})
	a := f.do(t, "GET", "/openapi.json", "", "")
	if a.status != 200 {
		t.Fatalf("openapi: %d", a.status)
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
		Comps   struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(a.body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi version %q", doc.OpenAPI)
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented[strings.ToUpper(method)+" "+path] = true
			if op["responses"] == nil || op["summary"] == "" {
				t.Errorf("%s %s: no responses or summary", method, path)
			}
			concrete := param.ReplaceAllString(path, "req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P")
			base := f.srv.URL
			if op["x-yolda-listener"] == "operations" {
				base = f.ops.URL
			}
			got := f.doAt(t, base, strings.ToUpper(method), concrete, "operator", "")
			if got.status == http.StatusMethodNotAllowed || strings.Contains(got.body, "No such resource") && !strings.Contains(path, "{") {
				t.Errorf("documented %s %s is not served: %d %s", method, path, got.status, got.body)
			}
		}
	}
	for _, want := range []string{
		"POST /v1/auth/login", "POST /v1/requests", "GET /v1/requests", "GET /v1/requests/{id}",
		"POST /v1/requests/{id}/cancel", "GET /healthz", "GET /readyz", "GET /metrics", "GET /openapi.json",
	} {
		if !documented[want] {
			t.Errorf("%s is not documented", want)
		}
	}
	for _, schema := range []string{"Request", "Submission", "Problem", "Location"} {
		if doc.Comps.Schemas[schema] == nil {
			t.Errorf("schema %s missing", schema)
		}
	}
	// The request schema carries the contract's fields.
	req := doc.Comps.Schemas["Request"].(map[string]any)["properties"].(map[string]any)
	for _, field := range []string{"id", "status", "service_type", "location", "destination", "vehicle", "policy", "contact", "notes", "insurance", "assignment", "timeline", "created_at", "updated_at"} {
		if req[field] == nil {
			t.Errorf("Request schema lacks %s", field)
		}
	}
	// Undocumented paths are not served.
	if a := f.do(t, "GET", "/v1/secret-admin", "operator", ""); a.status != 404 {
		t.Errorf("undocumented path answered %d", a.status)
	}
}
