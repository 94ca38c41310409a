// Package validate collects per-field problems with client input so that a
// caller learns every mistake in one answer, each named by its JSON path
// ("location.lat"). The HTTP layer turns Errors into an RFC 9457 document.
package validate

import (
	"strings"
)

// FieldError is one problem with one field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Errors is a list of field problems; it is an error when not empty.
type Errors []FieldError

func (e Errors) Error() string {
	var b strings.Builder
	b.WriteString("invalid input: ")
	for i, f := range e {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Field + ": " + f.Message)
	}
	return b.String()
}

// Add records a problem.
func (e *Errors) Add(field, message string) { *e = append(*e, FieldError{field, message}) }

// Err returns e as an error, or nil when there is nothing wrong.
func (e Errors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// Has reports whether a problem was recorded for field.
func (e Errors) Has(field string) bool {
	for _, f := range e {
		if f.Field == field {
			return true
		}
	}
	return false
}

// OneOf checks that value is one of allowed.
func OneOf[T ~string](e *Errors, field string, value T, allowed []T) {
	if value == "" {
		e.Add(field, "is required")
		return
	}
	for _, a := range allowed {
		if a == value {
			return
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	e.Add(field, "must be one of "+strings.Join(names, ", "))
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return string(buf[i:])
}
