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

	"github.com/yolda/yolda/internal/validate"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON reads exactly one JSON object of at most maxBytes into dst,
// refusing unknown fields. Its errors are problems naming the field where
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
		return decodeProblem(err, maxBytes, nil, nil)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err = dec.Decode(dst)
	if errors.Is(err, io.EOF) && allowEmpty {
		return nil
	}
	if err != nil {
		return decodeProblem(err, maxBytes, data, dst)
	}
	if dec.More() {
		return newProblem(http.StatusBadRequest, "malformed-json", "Malformed JSON", "The body holds more than one JSON value.")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return newProblem(http.StatusBadRequest, "malformed-json", "Malformed JSON", "The body holds more than one JSON value.")
	}
	return nil
}

// decodeProblem turns a decoding error into a problem; data and dst, when
// given, let an unknown field be named by its full path.
func decodeProblem(err error, maxBytes int64, data []byte, dst any) error {
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
		paths := unknownFields(data, reflect.TypeOf(dst))
		if len(paths) == 0 {
			paths = []string{strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)}
		}
		var errs validate.Errors
		for _, p := range paths {
			errs.Add(p, "is not a known field")
		}
		return errs
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
