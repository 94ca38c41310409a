package jsonstrict

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

type location struct {
	Lat  *float64 `json:"lat"`
	Lng  *float64 `json:"lng"`
	Note string   `json:"note,omitempty"`
}

type base struct {
	CreatedBy string `json:"created_by"`
}

type body struct {
	base
	ServiceType string            `json:"service_type"`
	Location    *location         `json:"location"`
	Stops       []location        `json:"stops"`
	Labels      map[string]string `json:"labels"`
	Raw         json.RawMessage   `json:"raw"`
	Any         any               `json:"any"`
	At          time.Time         `json:"at"`
	Skipped     string            `json:"-"`
	Untagged    int
}

var bodyType = reflect.TypeOf(&body{})

func TestCheck(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		// want is the paths with problems; nil means the document is fine.
		want   []string
		syntax bool
	}{
		{"fine", `{"service_type":"tow","location":{"lat":1,"lng":2e3},"stops":[{"lat":-0.5}],"labels":{"a":"b","A":"c"},"raw":{"x":[1,{"y":null}]},"any":[true,false],"at":"2026-11-26T10:00:00Z","created_by":"x","Untagged":1}`, nil, false},
		{"duplicate", `{"service_type":"tow","service_type":"lockout"}`, []string{"service_type"}, false},
		{"case variant", `{"Service_Type":"tow"}`, []string{"Service_Type"}, false},
		{"case variant beside the exact name", `{"service_type":"tow","SERVICE_TYPE":"lockout"}`, []string{"SERVICE_TYPE"}, false},
		{"unicode fold (Kelvin sign)", `{"location":{"lat":1},"Untagged":1,"untaggeD":2}`, []string{"untaggeD"}, false},
		{"nested duplicate", `{"location":{"lat":1,"lat":2}}`, []string{"location.lat"}, false},
		{"nested unknown", `{"location":{"lat":1,"foo":2}}`, []string{"location.foo"}, false},
		{"unknown in array element", `{"stops":[{"lat":1},{"Lat":2}]}`, []string{"stops[1].Lat"}, false},
		{"duplicate in map", `{"labels":{"a":"1","a":"2"}}`, []string{"labels.a"}, false},
		{"duplicate in raw", `{"raw":{"k":1,"k":2}}`, []string{"raw.k"}, false},
		{"duplicate deep in any", `{"any":[{"x":{"y":1,"y":1}}]}`, []string{"any[0].x.y"}, false},
		{"duplicate through escapes", `{"service_type":"a","service\u005ftype":"b"}`, []string{"service_type"}, false},
		{"skipped field is unknown", `{"Skipped":"x"}`, []string{"Skipped"}, false},
		{"invalid UTF-8 in a value", "{\"service_type\":\"to\xffw\"}", []string{"service_type"}, false},
		{"lone high surrogate", `{"location":{"note":"\ud800"}}`, []string{"location.note"}, false},
		{"lone low surrogate", `{"service_type":"\udc00x"}`, []string{"service_type"}, false},
		{"surrogate pair is fine", `{"service_type":"\ud83d\ude97"}`, nil, false},
		{"invalid UTF-8 in a name", "{\"a\xff\":1}", []string{"\"a\ufffd\""}, false},
		{"many problems at once", `{"x":1,"Location":{},"service_type":"a","service_type":"b"}`, []string{"x", "Location", "service_type"}, false},
		{"empty", `  `, nil, true},
		{"two values", `{} {}`, nil, true},
		{"truncated", `{"a":`, nil, true},
		{"trailing comma", `{"a":1,}`, nil, true},
		{"bad number", `{"lat":01}`, nil, true},
		{"control in string", "{\"a\":\"x\ny\"}", nil, true},
		{"bad escape", `{"a":"\x"}`, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Check([]byte(tc.doc), bodyType)
			var syn *SyntaxError
			if tc.syntax {
				if !errors.As(err, &syn) {
					t.Fatalf("err = %v, want a syntax error", err)
				}
				if json.Valid([]byte(tc.doc)) {
					t.Errorf("encoding/json takes it: the two disagree")
				}
				return
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("err = %v, want problems", err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.Path)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems at %q, want %q (%v)", got, tc.want, ps)
			}
		})
	}
}

func TestDepth(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	var syn *SyntaxError
	if err := Check([]byte(deep), nil); !errors.As(err, &syn) {
		t.Errorf("depth %d: %v", MaxDepth+1, err)
	}
	ok := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	if err := Check([]byte(ok), nil); err != nil {
		t.Errorf("depth 100: %v", err)
	}
}

// FuzzCheck holds Check to three properties on any input: it calls a
// document malformed exactly when encoding/json does; a document it passes
// for a struct decodes into that struct without an unknown field; and it
// finds a duplicate member exactly when a token-by-token reading does.
func FuzzCheck(f *testing.F) {
	for _, seed := range []string{
		`{"service_type":"tow","location":{"lat":1,"lng":2}}`,
		`{"service_type":"tow","service_type":"lockout"}`,
		`{"Service_Type":"x"}`, `{"labels":{"a":1,"a":2}}`, `[1,2,{"a":[]}]`, `"\ud800"`, "\"\xff\"", `{}`, `  `,
		`{"a":1}{"b":2}`, `-0.5e+3`, `{"stops":[{"lat":1},{"lat":1,"lat":2}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Check(data, bodyType)
		var syn *SyntaxError
		isSyntax := errors.As(err, &syn)
		if isSyntax == json.Valid(data) {
			t.Fatalf("Check says syntax error %v (%v), encoding/json says valid %v", isSyntax, err, json.Valid(data))
		}
		if isSyntax {
			return
		}
		if err == nil {
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			var b body
			if derr := dec.Decode(&b); derr != nil && strings.Contains(derr.Error(), "unknown field") {
				t.Fatalf("passed but encoding/json finds an unknown field: %v", derr)
			}
		}
		var ps Problems
		errors.As(Check(data, nil), &ps)
		utf8Problem, dupProblem := false, false
		for _, p := range ps {
			utf8Problem = utf8Problem || strings.Contains(p.Message, "UTF-8")
			dupProblem = dupProblem || strings.Contains(p.Message, "more than once")
		}
		if len(ps) < maxProblems && !utf8Problem && dupProblem != hasDuplicate(t, data) {
			t.Fatalf("duplicate found by Check %v, by tokens %v: %q", dupProblem, !dupProblem, data)
		}
	})
}

// hasDuplicate is an independent reading: encoding/json's tokens.
func hasDuplicate(t *testing.T, data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object    bool
		expectKey bool
		keys      map[string]bool
	}
	var stack []*frame
	dup := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return dup
		}
		if err != nil {
			t.Fatalf("token reading of a valid document: %v", err)
		}
		top := (*frame)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expectKey {
			if k, ok := tok.(string); ok {
				if top.keys[k] {
					dup = true
				}
				top.keys[k] = true
				top.expectKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			if top != nil && top.object {
				top.expectKey = true
			}
			stack = append(stack, &frame{object: true, expectKey: true, keys: map[string]bool{}})
			continue
		case json.Delim('['):
			if top != nil && top.object {
				top.expectKey = true
			}
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].expectKey = true
			}
			continue
		}
		if top != nil && top.object {
			top.expectKey = true
		}
	}
}
