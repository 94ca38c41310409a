package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/intake"
)

const docURL = "https://yolda.test/openapi.json"

// apiDoc is the served OpenAPI document, compiled for validation.
type apiDoc struct {
	raw      map[string]any
	compiler *jsonschema.Compiler
	cache    map[string]*jsonschema.Schema
}

func loadDoc(t *testing.T, f *fixture) *apiDoc {
	t.Helper()
	a := f.do(t, "GET", "/openapi.json", "", "")
	if a.status != 200 {
		t.Fatalf("openapi.json: %d", a.status)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(a.body))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(docURL, doc); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(a.body), &raw); err != nil {
		t.Fatal(err)
	}
	return &apiDoc{raw: raw, compiler: c, cache: map[string]*jsonschema.Schema{}}
}

// pointer escapes one JSON pointer token.
func pointer(tokens ...string) string {
	var b strings.Builder
	for _, tok := range tokens {
		b.WriteString("/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(tok))
	}
	return b.String()
}

func (d *apiDoc) schema(t testing.TB, ptr string) *jsonschema.Schema {
	t.Helper()
	if s, ok := d.cache[ptr]; ok {
		return s
	}
	s, err := d.compiler.Compile(docURL + "#" + ptr)
	if err != nil {
		t.Fatalf("compile %s: %v", ptr, err)
	}
	d.cache[ptr] = s
	return s
}

// responseSchema is where the document describes the answer of method
// pattern with status: its own schema, or the problem document.
func (d *apiDoc) responseSchema(t testing.TB, method, pattern string, status int) string {
	t.Helper()
	op, ok := d.raw["paths"].(map[string]any)[pattern].(map[string]any)[strings.ToLower(method)].(map[string]any)
	if !ok {
		t.Fatalf("%s %s is not documented", method, pattern)
	}
	responses := op["responses"].(map[string]any)
	resp, ok := responses[fmt.Sprint(status)].(map[string]any)
	if !ok {
		t.Errorf("%s %s: status %d is not documented", method, pattern, status)
		resp = responses["default"].(map[string]any)
	}
	if _, isRef := resp["$ref"]; isRef || status >= 400 {
		return "/components/schemas/Problem"
	}
	return pointer("paths", pattern, strings.ToLower(method), "responses", fmt.Sprint(status), "content", "application/json", "schema")
}

func (d *apiDoc) bodySchema(method, pattern string) string {
	return pointer("paths", pattern, strings.ToLower(method), "requestBody", "content", "application/json", "schema")
}

// valid reports the validation error of body against the schema at ptr.
func (d *apiDoc) validate(t testing.TB, ptr, body string) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(body))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, body)
	}
	return d.schema(t, ptr).Validate(inst)
}

// TestResponsesMatchTheDocument calls the API as a client would and checks
// every answer, success or problem, against the schema the document gives
// for that route and status.
func TestResponsesMatchTheDocument(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f := setup(t, engine, httpapi.Options{})
		doc := loadDoc(t, f)
		check := func(method, pattern, path, user, body string) answer {
			t.Helper()
			a := f.do(t, method, path, user, body)
			ptr := doc.responseSchema(t, method, pattern, a.status)
			if err := doc.validate(t, ptr, a.body); err != nil {
				t.Errorf("%s %s answered %d, not as documented (%s): %v\n%s", method, path, a.status, ptr, err, a.body)
			}
			return a
		}
		check("POST", "/v1/auth/login", "/v1/auth/login", "", `{"username":"ayse","password":"ayse-password"}`)
		check("POST", "/v1/auth/login", "/v1/auth/login", "", `{"username":"ayse","password":"nope"}`)
		check("GET", "/v1/me", "/v1/me", "ayse", "")
		created := check("POST", "/v1/requests", "/v1/requests", "ayse", validBody)
		id := created.json(t)["id"].(string)
		check("POST", "/v1/requests", "/v1/requests", "ayse", `{"service_type":"tow","location":{"lat":91}}`)
		check("GET", "/v1/requests/{id}", "/v1/requests/"+id, "ayse", "")
		check("GET", "/v1/requests/{id}", "/v1/requests/"+id, "mehmet", "")
		check("GET", "/v1/requests", "/v1/requests?limit=1", "operator", "")
		check("GET", "/v1/requests", "/v1/requests?colour=red", "operator", "")
		check("GET", "/v1/requests/{id}/notifications", "/v1/requests/"+id+"/notifications", "ayse", "")
		check("GET", "/v1/insurers", "/v1/insurers", "operator", "")
		check("POST", "/v1/requests/{id}/insurance", "/v1/requests/"+id+"/insurance", "operator", `{"decision":"waived","reason":"paid on the spot"}`)
		check("POST", "/v1/requests/{id}/cancel", "/v1/requests/"+id+"/cancel", "ayse", `{"reason":"found help"}`)
		check("POST", "/v1/requests/{id}/cancel", "/v1/requests/"+id+"/cancel", "ayse", `{"reason":"again"}`)
		dead := deadletter.NewService(f.store, nil)
		if err := dead.Record(context.Background(), "notify", "EVENTS", "events.request.created", "msg_1", []byte(`{"id":"msg_1"}`), fmt.Errorf("boom"), 5); err != nil {
			t.Fatal(err)
		}
		list := check("GET", "/v1/admin/dead-letters", "/v1/admin/dead-letters", "operator", "")
		letter := list.json(t)["items"].([]any)[0].(map[string]any)["id"].(string)
		check("POST", "/v1/admin/dead-letters/{id}/retry", "/v1/admin/dead-letters/"+letter+"/retry", "operator", "")
		check("GET", "/healthz", "/healthz", "", "")
		check("GET", "/v1/requests", "/v1/requests", "", "")
	})
}

// contractExamples maps each fixture to where the document describes it
// and the Go type it decodes into.
var contractExamples = []struct {
	file            string
	method, pattern string
	status          int // 0: the request body
	into            any
}{
	{"login-request.json", "POST", "/v1/auth/login", 0, nil},
	{"login-answer.json", "POST", "/v1/auth/login", 200, nil},
	{"submission.json", "POST", "/v1/requests", 0, &intake.Submission{}},
	{"request.json", "GET", "/v1/requests/{id}", 200, &intake.Request{}},
	{"request-assigned.json", "GET", "/v1/requests/{id}", 200, &intake.Request{}},
	{"request-list.json", "GET", "/v1/requests", 200, nil},
	{"problem-validation.json", "POST", "/v1/requests", 422, &httpapi.Problem{}},
	{"cancel.json", "POST", "/v1/requests/{id}/cancel", 0, nil},
	{"insurance-waived.json", "POST", "/v1/requests/{id}/insurance", 0, nil},
	{"insurance-rejected.json", "POST", "/v1/requests/{id}/insurance", 0, nil},
}

// TestContractExamples: every JSON example of the contract validates
// against the generated document, survives a round trip through its Go
// type (decode, encode, validate again, nothing of the example lost),
// and the submission example is accepted by the server.
func TestContractExamples(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{})
	doc := loadDoc(t, f)
	files, _ := filepath.Glob("testdata/contract/*.json")
	if len(files) != len(contractExamples) {
		t.Errorf("%d fixtures, %d mapped: map every example", len(files), len(contractExamples))
	}
	for _, ex := range contractExamples {
		raw, err := os.ReadFile(filepath.Join("testdata/contract", ex.file))
		if err != nil {
			t.Fatal(err)
		}
		ptr := doc.bodySchema(ex.method, ex.pattern)
		if ex.status != 0 {
			ptr = doc.responseSchema(t, ex.method, ex.pattern, ex.status)
		}
		if err := doc.validate(t, ptr, string(raw)); err != nil {
			t.Errorf("%s does not match %s: %v", ex.file, ptr, err)
			continue
		}
		if ex.status != 0 {
			// The contract promises added fields: clients must accept them.
			var m map[string]any
			_ = json.Unmarshal(raw, &m)
			m["a_field_added_later"] = map[string]any{"x": 1}
			more, _ := json.Marshal(m)
			if err := doc.validate(t, ptr, string(more)); err != nil {
				t.Errorf("%s with an added field does not match %s: %v", ex.file, ptr, err)
			}
		}
		if ex.into == nil {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(ex.into); err != nil {
			t.Errorf("%s does not decode into %T: %v", ex.file, ex.into, err)
			continue
		}
		again, _ := json.Marshal(ex.into)
		if err := doc.validate(t, ptr, string(again)); err != nil {
			t.Errorf("%s re-encoded from %T does not match: %v\n%s", ex.file, ex.into, err, again)
		}
		var before, after any
		_ = json.Unmarshal(raw, &before)
		_ = json.Unmarshal(again, &after)
		if path := lost(before, after, ""); path != "" {
			t.Errorf("%s loses %s in a round trip through %T", ex.file, path, ex.into)
		}
	}
	raw, _ := os.ReadFile("testdata/contract/submission.json")
	if a := f.do(t, "POST", "/v1/requests", "ayse", string(raw)); a.status != 202 {
		t.Errorf("the contract's submission: %d %s", a.status, a.body)
	}
}

// lost is the path of the first value of want that got does not hold
// equally ("" if none): got may have more.
func lost(want, got any, path string) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path
		}
		for k, v := range w {
			if p := lost(v, g[k], path+"."+k); p != "" {
				return p
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return path
		}
		for i := range w {
			if p := lost(w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
		return ""
	}
	if !reflect.DeepEqual(want, got) {
		return path
	}
	return ""
}

// TestSubmissionSchemaAgreesWithTheValidator: for bodies whose fault a
// schema can express, the document and the server agree on what is
// valid. (Formats the schema leaves to prose, such as a plate's, are the
// validator's alone.)
func TestSubmissionSchemaAgreesWithTheValidator(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{})
	doc := loadDoc(t, f)
	ptr := doc.bodySchema("POST", "/v1/requests")
	cases := map[string]string{
		"valid":                      validBody,
		"jump start, no destination": withBody(t, func(m map[string]any) { m["service_type"] = "jump_start"; delete(m, "destination") }),
		"tow without destination":    withBody(t, func(m map[string]any) { delete(m, "destination") }),
		"no location":                withBody(t, func(m map[string]any) { delete(m, "location") }),
		"no vehicle":                 withBody(t, func(m map[string]any) { delete(m, "vehicle") }),
		"no policy":                  withBody(t, func(m map[string]any) { delete(m, "policy") }),
		"no contact":                 withBody(t, func(m map[string]any) { delete(m, "contact") }),
		"no service type":            withBody(t, func(m map[string]any) { delete(m, "service_type") }),
		"unknown service":            withBody(t, func(m map[string]any) { m["service_type"] = "teleport" }),
		"lat 91":                     withBody(t, func(m map[string]any) { m["location"].(map[string]any)["lat"] = 91 }),
		"lng -181":                   withBody(t, func(m map[string]any) { m["location"].(map[string]any)["lng"] = -181 }),
		"lat edge":                   withBody(t, func(m map[string]any) { m["location"].(map[string]any)["lat"] = -90 }),
		"lat null":                   withBody(t, func(m map[string]any) { m["location"].(map[string]any)["lat"] = nil }),
		"no lng":                     withBody(t, func(m map[string]any) { delete(m["location"].(map[string]any), "lng") }),
		"location null":              withBody(t, func(m map[string]any) { m["location"] = nil }),
		"unknown field":              withBody(t, func(m map[string]any) { m["tip"] = 5 }),
		"nested unknown field":       withBody(t, func(m map[string]any) { m["vehicle"].(map[string]any)["colour"] = "red" }),
		"vehicle type":               withBody(t, func(m map[string]any) { m["vehicle"].(map[string]any)["type"] = "tank" }),
		"no plate":                   withBody(t, func(m map[string]any) { delete(m["vehicle"].(map[string]any), "plate") }),
		"notes 1000":                 withBody(t, func(m map[string]any) { m["notes"] = strings.Repeat("ş", 1000) }),
		"notes 1001":                 withBody(t, func(m map[string]any) { m["notes"] = strings.Repeat("ş", 1001) }),
		"address 301":                withBody(t, func(m map[string]any) { m["location"].(map[string]any)["address"] = strings.Repeat("a", 301) }),
		"name 121":                   withBody(t, func(m map[string]any) { m["contact"].(map[string]any)["name"] = strings.Repeat("a", 121) }),
		"empty name":                 withBody(t, func(m map[string]any) { m["contact"].(map[string]any)["name"] = "" }),
		"lat as text":                withBody(t, func(m map[string]any) { m["location"].(map[string]any)["lat"] = "north" }),
	}
	for name, body := range cases {
		schemaOK := doc.validate(t, ptr, body) == nil
		a := f.do(t, "POST", "/v1/requests", "ayse", body)
		serverOK := a.status == 202
		if schemaOK != serverOK {
			t.Errorf("%s: schema says valid=%v, server answered %d %s", name, schemaOK, a.status, a.body)
		}
	}
}

// TestOpenAPIForClientGenerators: what a generated client needs is there.
func TestOpenAPIForClientGenerators(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{})
	doc := loadDoc(t, f)
	if servers, _ := doc.raw["servers"].([]any); len(servers) == 0 {
		t.Error("no servers entry")
	}
	schemas := doc.raw["components"].(map[string]any)["schemas"].(map[string]any)
	prop := func(schema string, path ...string) map[string]any {
		t.Helper()
		s, _ := schemas[schema].(map[string]any)
		for _, p := range path {
			props, _ := s["properties"].(map[string]any)
			s, _ = props[p].(map[string]any)
			if ref, ok := s["$ref"].(string); ok {
				s, _ = schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
			}
		}
		if s == nil {
			t.Fatalf("%s.%s is not documented", schema, strings.Join(path, "."))
		}
		return s
	}
	enums := map[string][]string{
		"Request.status":             intake.Status("").Enum(),
		"Request.service_type":       intake.ServiceType("").Enum(),
		"Request.insurance.status":   intake.InsuranceStatus("").Enum(),
		"Request.vehicle.type":       intake.VehicleType("").Enum(),
		"Submission.service_type":    intake.ServiceType("").Enum(),
		"Submission.vehicle.type":    intake.VehicleType("").Enum(),
		"insuranceDecision.decision": {"waived", "rejected"},
		"TimelineEntry.status":       intake.Status("").Enum(),
		"loginAnswer.role":           {"customer", "driver", "operator", "admin"},
	}
	for path, want := range enums {
		parts := strings.Split(path, ".")
		got := fmt.Sprint(prop(parts[0], parts[1:]...)["enum"])
		if got != fmt.Sprint(want) {
			t.Errorf("%s enum %s, want %v", path, got, want)
		}
	}
	// Coverage is typed, and null until the insurer answers.
	cov := fmt.Sprint(schemas["Insurance"].(map[string]any)["properties"].(map[string]any)["coverage"])
	if !strings.Contains(cov, "#/components/schemas/Coverage") || !strings.Contains(cov, "null") {
		t.Errorf("insurance.coverage: %s", cov)
	}
	if fmt.Sprint(prop("Coverage", "max_tow_km")["type"]) != "integer" {
		t.Errorf("Coverage: %v", schemas["Coverage"])
	}
	// Submitted coordinates and objects are not nullable.
	for _, p := range [][]string{{"Submission", "location", "lat"}, {"Submission", "location"}, {"Submission", "vehicle"}} {
		s := prop(p[0], p[1:]...)
		if strings.Contains(fmt.Sprint(s), "null") {
			t.Errorf("%s is nullable: %v", strings.Join(p, "."), s)
		}
	}
	// Answers stay open to added fields; bodies are closed.
	inputs := map[string]bool{}
	var reach func(v any)
	reach = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				name := strings.TrimPrefix(ref, "#/components/schemas/")
				if !inputs[name] {
					inputs[name] = true
					reach(schemas[name])
				}
			}
			for _, e := range x {
				reach(e)
			}
		case []any:
			for _, e := range x {
				reach(e)
			}
		}
	}
	for _, ops := range doc.raw["paths"].(map[string]any) {
		for _, op := range ops.(map[string]any) {
			reach(op.(map[string]any)["requestBody"])
		}
	}
	if !inputs["Submission"] || !inputs["VehicleInput"] || inputs["Request"] {
		t.Errorf("body schemas found: %v", inputs)
	}
	for name, s := range schemas {
		ap, set := s.(map[string]any)["additionalProperties"]
		input := inputs[name]
		if input && ap != false {
			t.Errorf("body schema %s accepts unknown fields", name)
		}
		if !input && set && ap == false {
			t.Errorf("answer schema %s refuses added fields", name)
		}
	}
	if req := fmt.Sprint(schemas["Submission"].(map[string]any)["required"]); req != "[service_type location vehicle policy contact]" {
		t.Errorf("Submission requires %s", req)
	}
}
