package httpapi

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

// openAPI builds the OpenAPI 3.1 document from the route table. Schemas
// come from the Go types by reflection, in two directions:
//
//   - what the server sends (results, problems): a field is required when
//     it is always encoded (no omitempty), a pointer may be null, and
//     objects stay open, since the contract promises added fields;
//   - what it accepts (bodies): required, lengths, ranges and conditions
//     come from the `validate` tags that validate.Struct enforces, and
//     objects are closed, since unknown fields are refused.
//
// Enums come from the types' Enum methods, the same lists validation uses.
func (s *Server) openAPI() map[string]any {
	g := &schemaGen{components: map[string]any{}, names: map[typeKey]string{}, taken: map[string]typeKey{}}
	// What the server sends first: those types keep their plain names, and
	// the closed input variant of a shared type (Vehicle) is VehicleInput.
	g.schema(reflect.TypeOf(Problem{}), output)
	for _, rt := range s.routes {
		if rt.result != nil {
			g.schema(reflect.TypeOf(rt.result), output)
		}
	}
	paths := map[string]map[string]any{}
	for _, rt := range s.routes {
		op := map[string]any{
			"summary":     rt.summary,
			"tags":        []string{rt.tag},
			"operationId": operationID(rt),
		}
		var params []map[string]any
		for _, name := range pathParams(rt.pattern) {
			params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, p := range rt.query {
			params = append(params, paramDoc(p, "query"))
		}
		for _, p := range rt.headers {
			params = append(params, paramDoc(p, "header"))
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.body != nil {
			media := map[string]any{"schema": g.schema(reflect.TypeOf(rt.body), input)}
			if rt.example != nil {
				media["example"] = rt.example
			}
			op["requestBody"] = map[string]any{
				"required": true,
				"content":  map[string]any{"application/json": media},
			}
		}
		responses := map[string]any{}
		ok := map[string]any{"description": http.StatusText(rt.success)}
		switch {
		case rt.result != nil:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(rt.result), output)}}
		case rt.pattern == "/metrics":
			ok["content"] = map[string]any{"text/plain": map[string]any{"schema": map[string]any{"type": "string"}}}
		}
		responses[strconv.Itoa(rt.success)] = ok
		errs := rt.errors
		if !rt.public {
			errs = append([]int{401}, errs...)
		}
		for _, code := range errs {
			responses[strconv.Itoa(code)] = map[string]any{"$ref": "#/components/responses/Problem"}
		}
		responses["default"] = map[string]any{"$ref": "#/components/responses/Problem"}
		op["responses"] = responses
		if !rt.public {
			op["security"] = []map[string]any{{"bearer": []string{}}}
		}
		if rt.listener == onOps {
			op["description"] = "Served on the operations listener (YOLDA_OPS_ADDR, loopback by default), not on the API listener."
			op[opsExtension] = "operations"
		}
		if paths[rt.pattern] == nil {
			paths[rt.pattern] = map[string]any{}
		}
		paths[rt.pattern][strings.ToLower(rt.method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "Yolda API",
			"version":     s.opts.Version,
			"description": "Roadside assistance: requests, dispatch, live tracking. Errors are RFC 9457 problem documents. Answers may carry fields this document does not list yet: ignore them.",
		},
		"servers": []map[string]any{{"url": "/", "description": "the server that serves this document"}},
		"paths":   paths,
		"components": map[string]any{
			"schemas": g.components,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
			},
			"responses": map[string]any{
				"Problem": map[string]any{
					"description": "An RFC 9457 problem document",
					"content":     map[string]any{"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}},
				},
			},
		},
	}
}

// opsExtension marks the operations served on the operations listener
// only, for tools (and tests) that call every documented operation.
const opsExtension = "x-yolda-listener"

func operationID(rt route) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.method))
	for _, part := range strings.Split(rt.pattern, "/") {
		part = strings.Trim(part, "{}")
		for _, w := range strings.FieldsFunc(part, func(r rune) bool { return r == '.' || r == '_' || r == '-' }) {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

func pathParams(pattern string) []string {
	var out []string
	for _, part := range strings.Split(pattern, "/") {
		if strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}") {
			out = append(out, strings.Trim(part, "{}."))
		}
	}
	return out
}

func paramDoc(p param, in string) map[string]any {
	schema := map[string]any{"type": p.kind}
	if p.enum != nil {
		schema["enum"] = p.enum
	}
	d := map[string]any{"name": p.name, "in": in, "required": false, "schema": schema}
	if p.list {
		// status=dispatching,assigned
		d["schema"] = map[string]any{"type": "array", "items": schema}
		d["style"], d["explode"] = "form", false
	}
	if p.description != "" {
		d["description"] = p.description
	}
	return d
}

// direction is which side of the wire a schema describes.
type direction uint8

const (
	output direction = iota // sent by the server
	input                   // accepted by the server
)

type typeKey struct {
	t   reflect.Type
	dir direction
}

type schemaGen struct {
	components map[string]any
	names      map[typeKey]string
	taken      map[string]typeKey
}

var (
	timeType     = reflect.TypeOf(time.Time{})
	rawJSONType  = reflect.TypeOf(json.RawMessage{})
	enumeratedIf = reflect.TypeOf((*validate.Enumerated)(nil)).Elem()
)

// fieldTypes documents fields whose Go type says less than the JSON does:
// the coverage is kept as the insurer sent it (raw), but it is an object
// of this shape.
var fieldTypes = map[reflect.Type]map[string]reflect.Type{
	reflect.TypeOf(intake.Insurance{}): {"Coverage": reflect.TypeOf(&intake.Coverage{})},
}

func (g *schemaGen) schema(t reflect.Type, dir direction) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawJSONType:
		return map[string]any{}
	case t.Kind() == reflect.String && t.Implements(enumeratedIf):
		return map[string]any{"type": "string", "enum": reflect.Zero(t).Interface().(validate.Enumerated).Enum()}
	}
	switch t.Kind() {
	case reflect.Pointer:
		inner := g.schema(t.Elem(), dir)
		if dir == input {
			return inner // null is taken as absent
		}
		return nullable(inner)
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint64, reflect.Uint32, reflect.Uint:
		return map[string]any{"type": "integer"}
	case reflect.Float64, reflect.Float32:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": g.schema(t.Elem(), dir)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem(), dir)}
	case reflect.Struct:
		if t.Name() == "" {
			return g.object(t, dir)
		}
		key := typeKey{t, dir}
		name, done := g.names[key]
		if !done {
			name = g.name(key)
			g.components[name] = map[string]any{} // breaks recursion
			g.components[name] = g.object(t, dir)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

// name gives a component its name: the Go type's, with Input appended
// when the type's output schema already has it.
func (g *schemaGen) name(key typeKey) string {
	name := key.t.Name()
	if other, taken := g.taken[name]; taken && other != key {
		if key.dir == input && !strings.HasSuffix(name, "Input") {
			name += "Input"
		}
		if other, taken := g.taken[name]; taken && other != key {
			name = strings.ReplaceAll(key.t.String(), ".", "")
		}
	}
	g.names[key], g.taken[name] = name, key
	return name
}

func nullable(s map[string]any) map[string]any {
	if typ, ok := s["type"].(string); ok && s["enum"] == nil {
		out := map[string]any{}
		for k, v := range s {
			out[k] = v
		}
		out["type"] = []string{typ, "null"}
		return out
	}
	return map[string]any{"oneOf": []any{s, map[string]any{"type": "null"}}}
}

func (g *schemaGen) object(t reflect.Type, dir direction) map[string]any {
	props := map[string]any{}
	required := []string{}
	var conditions []any
	// A body type whose fields carry no validate tags is checked by hand
	// elsewhere; its fields without omitempty are taken as required.
	tagged := false
	for i := 0; i < t.NumField(); i++ {
		tagged = tagged || t.Field(i).Tag.Get("validate") != ""
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, ok := validate.JSONName(f)
		if !ok {
			continue
		}
		ft := f.Type
		if o, ok := fieldTypes[t][f.Name]; ok {
			ft = o
		}
		fs := g.schema(ft, dir)
		switch {
		case dir == output || !tagged:
			if !strings.Contains(f.Tag.Get("json"), ",omitempty") {
				required = append(required, name)
			}
		default:
			rule, err := validate.RuleOf(f)
			if err != nil {
				panic(err) // validate.Struct would panic on it too
			}
			if rule.ReadOnly {
				continue // the server's to fill in: not part of what it accepts
			}
			if rule.Required {
				required = append(required, name)
			}
			fs = constrain(fs, ft, rule)
			if c := rule.RequiredIf; c != nil {
				fs["description"] = "Required when " + c.Field + " is " + c.Value + "."
				conditions = append(conditions, map[string]any{
					"if":   map[string]any{"properties": map[string]any{c.Field: map[string]any{"const": c.Value}}, "required": []string{c.Field}},
					"then": map[string]any{"required": []string{name}},
				})
			}
		}
		props[name] = fs
	}
	out := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		out["required"] = required
	}
	if dir == input {
		out["additionalProperties"] = false
	}
	if conditions != nil {
		out["allOf"] = conditions
	}
	return out
}

// constrain adds a field's rule to its schema: a length to text, a range
// to a number.
func constrain(s map[string]any, t reflect.Type, r validate.Rule) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]any{}
	for k, v := range s {
		out[k] = v
	}
	switch t.Kind() {
	case reflect.String:
		if r.Max != nil && out["enum"] == nil {
			out["maxLength"] = int(*r.Max)
		}
		if r.Required && out["enum"] == nil {
			out["minLength"] = 1
		}
	case reflect.Float64, reflect.Float32, reflect.Int, reflect.Int64, reflect.Int32:
		if r.Min != nil {
			out["minimum"] = *r.Min
		}
		if r.Max != nil {
			out["maximum"] = *r.Max
		}
	}
	return out
}

// handleOpenAPI serves the document built once in New: the route table
// does not change while the server runs.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.openAPIDoc)
}
