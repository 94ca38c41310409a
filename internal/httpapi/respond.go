package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/yolda/yolda/internal/jsonstrict"
	"github.com/yolda/yolda/internal/validate"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON reads exactly one JSON object of at most maxBytes into dst.
// It is the one way handlers read a body: jsonstrict first refuses what
// could be read two ways (duplicate or case-folded member names, members
// dst does not have, invalid UTF-8), each named by its full path; then
// encoding/json decodes. Its errors are problems naming the field where
// that is possible.
func decodeJSON(w http.ResponseWriter, r *http.Request, maxBytes int64, dst any, allowEmpty bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return newProblem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type", "Send the body as Content-Type: application/json (with curl: --json).")
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		return decodeProblem(err, maxBytes)
	}
	var syntax *jsonstrict.SyntaxError
	var ambiguous jsonstrict.Problems
	switch err := jsonstrict.Check(data, reflect.TypeOf(dst)); {
	case errors.As(err, &syntax) && syntax.Empty && allowEmpty:
		return nil
	case errors.As(err, &syntax) && syntax.Trailing:
		return newProblem(http.StatusBadRequest, "malformed-json", "Malformed JSON", "The body holds more than one JSON value.")
	case errors.As(err, &syntax):
		return newProblem(http.StatusBadRequest, "malformed-json", "Malformed JSON", "The body is not valid JSON.")
	case errors.As(err, &ambiguous):
		out := make(validate.Errors, len(ambiguous))
		for i, p := range ambiguous {
			out[i] = validate.FieldError{Field: p.Path, Message: p.Message}
		}
		return out
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields() // jsonstrict refused them already; kept as a backstop
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(err, maxBytes)
	}
	return nil
}

// decodeProblem turns a decoding error into a problem.
func decodeProblem(err error, maxBytes int64) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return tooLarge(maxBytes)
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return newProblem(http.StatusBadRequest, "malformed-json", "Malformed JSON", "The body is not valid JSON.")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(body)"
		}
		return validate.Errors{{Field: field, Message: "must be " + jsonKind(typ.Type.Kind().String())}}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return validate.Errors{{Field: name, Message: "is not a known field"}}
	}
	return newProblem(http.StatusBadRequest, "malformed-json", "Malformed JSON", "The body could not be read as JSON.")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "float64", "float32", "int", "int64", "int32":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	}
	return "an object"
}
