package validate

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Enumerated is a string type with a closed set of values. Struct checks
// a field of such a type against the set, and the OpenAPI document lists
// it as the field's enum.
type Enumerated interface {
	Enum() []string
}

// Rule is what a field's `validate` tag declares. The tag is the one
// place a limit is written: Struct enforces it and the OpenAPI generator
// documents it, so the two cannot disagree.
//
//	validate:"required"                  present: a non-nil pointer, a non-blank string
//	validate:"max=300"                   text of at most 300 characters
//	validate:"min=-90,max=90"            a number within the range, both included
//	validate:"required_if=service_type:tow"  required when the sibling field has that value
//	validate:"max=120,line"              one-line text (a name, a place): see Line; without
//	                                     it text is free text (see Text)
//	validate:"readonly"                  filled in by the server: sending it is an error
//
// A field of an Enumerated type must hold one of its values (when present).
type Rule struct {
	Required bool
	// Min and Max bound a number; Max alone on text is its length.
	Min, Max *float64
	// RequiredIf names a sibling JSON field and the value that makes this
	// field required.
	RequiredIf *Condition
	// Line marks one-line text, checked by Line rather than Text.
	Line bool
	// ReadOnly marks a field the server fills in: a client that sends a
	// value for it is told so, and the input schema leaves it out.
	ReadOnly bool
}

// Condition is "the sibling field Field holds Value".
type Condition struct{ Field, Value string }

// RuleOf parses the `validate` tag of f.
func RuleOf(f reflect.StructField) (Rule, error) {
	var r Rule
	tag := f.Tag.Get("validate")
	if tag == "" {
		return r, nil
	}
	for part := range strings.SplitSeq(tag, ",") {
		key, val, _ := strings.Cut(part, "=")
		switch key {
		case "required":
			r.Required = true
		case "line":
			r.Line = true
		case "readonly":
			r.ReadOnly = true
		case "min", "max":
			n, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return r, fmt.Errorf("validate tag of %s: %s=%q: %w", f.Name, key, val, err)
			}
			if key == "min" {
				r.Min = &n
			} else {
				r.Max = &n
			}
		case "required_if":
			field, value, ok := strings.Cut(val, ":")
			if !ok {
				return r, fmt.Errorf("validate tag of %s: required_if wants field:value", f.Name)
			}
			r.RequiredIf = &Condition{field, value}
		default:
			return r, fmt.Errorf("validate tag of %s: unknown rule %q", f.Name, key)
		}
	}
	return r, nil
}

// JSONName is the name encoding/json gives f, and whether it is encoded.
func JSONName(f reflect.StructField) (string, bool) {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" || !f.IsExported() {
		return "", false
	}
	if name == "" {
		name = f.Name
	}
	return name, true
}

// Struct checks the struct that v is (or points to) against its fields'
// rules, recording every problem under prefix plus the field's JSON path
// ("location.lat"). It descends into struct and pointer-to-struct fields
// that are present. It changes nothing: callers clean values with Clean
// as they copy them.
func Struct(e *Errors, prefix string, v any) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		panic("validate.Struct: not a struct: " + rv.Type().String())
	}
	t := rv.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, ok := JSONName(f)
		if !ok {
			continue
		}
		rule, err := RuleOf(f)
		if err != nil {
			panic(err) // a malformed tag is a programming error
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		required := rule.Required
		if c := rule.RequiredIf; c != nil && siblingIs(rv, c.Field, c.Value) {
			required = true
		}
		checkField(e, path, rv.Field(i), rule, required, missingMessage(rule))
	}
}

func missingMessage(r Rule) string {
	if r.RequiredIf == nil {
		return "is required"
	}
	return "is required when " + r.RequiredIf.Field + " is " + r.RequiredIf.Value
}

func checkField(e *Errors, path string, fv reflect.Value, rule Rule, required bool, missing string) {
	if rule.ReadOnly {
		if !fv.IsZero() {
			e.Add(path, "is worked out by Yolda; do not send it")
		}
		return
	}
	if fv.Kind() == reflect.Pointer {
		if fv.IsNil() {
			if required {
				e.Add(path, missing)
			}
			return
		}
		fv = fv.Elem()
	}
	switch fv.Kind() {
	case reflect.String:
		s := fv.String()
		if Clean(s) == "" {
			if required {
				e.Add(path, missing)
			}
			return
		}
		if en, ok := fv.Interface().(Enumerated); ok {
			checkEnum(e, path, s, en.Enum())
			return
		}
		switch {
		case rule.Max != nil && rule.Line:
			e.Line(path, s, required, int(*rule.Max))
		case rule.Max != nil:
			e.Text(path, s, required, int(*rule.Max))
		}
	case reflect.Float64, reflect.Float32, reflect.Int, reflect.Int64, reflect.Int32:
		var n float64
		if fv.CanFloat() {
			n = fv.Float()
		} else {
			n = float64(fv.Int())
		}
		checkRange(e, path, n, rule)
	case reflect.Struct:
		Struct(e, path, fv.Addr().Interface())
	}
}

func checkEnum(e *Errors, path, v string, allowed []string) {
	for _, a := range allowed {
		if a == v {
			return
		}
	}
	e.Add(path, "must be one of "+strings.Join(allowed, ", "))
}

func checkRange(e *Errors, path string, n float64, r Rule) {
	low, high := math.Inf(-1), math.Inf(1)
	if r.Min != nil {
		low = *r.Min
	}
	if r.Max != nil {
		high = *r.Max
	}
	if math.IsNaN(n) || n < low || n > high {
		e.Add(path, "must be between "+strconv.FormatFloat(low, 'f', -1, 64)+" and "+strconv.FormatFloat(high, 'f', -1, 64))
	}
}

// siblingIs reports whether the field of rv with JSON name field holds
// value.
func siblingIs(rv reflect.Value, field, value string) bool {
	t := rv.Type()
	for i := 0; i < t.NumField(); i++ {
		if name, ok := JSONName(t.Field(i)); ok && name == field {
			fv := rv.Field(i)
			return fv.Kind() == reflect.String && fv.String() == value
		}
	}
	return false
}
