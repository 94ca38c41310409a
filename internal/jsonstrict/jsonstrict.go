// Package jsonstrict refuses the JSON that encoding/json would quietly
// read one way while the sender (or a proxy, a log pipeline, another
// parser) reads it another: duplicate member names (the last one wins in
// Go, the first in others), member names that match a field only when case
// is ignored ("Service_Type" for service_type), invalid UTF-8 and lone
// surrogate escapes (which Go replaces with U+FFFD), and members the
// destination type does not have. It scans the document token by token
// before it is decoded and names every problem by its full path
// ("location.lat", "capabilities[2]").
//
// It is not a decoder: Check only says whether the document is
// unambiguous for a destination type; encoding/json then decodes it (and
// still reports type mismatches).
package jsonstrict

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting accepted, the same as encoding/json's.
const MaxDepth = 10000

// maxProblems caps how many problems one document reports.
const maxProblems = 20

// SyntaxError means the body is not one well-formed JSON value.
type SyntaxError struct {
	Offset int // byte offset of the problem
	Msg    string
	// Empty is set when the body holds no value at all; Trailing when a
	// value is followed by more than white space.
	Empty, Trailing bool
}

func (e *SyntaxError) Error() string {
	return "json: " + e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

// Problem is one ambiguity at one member.
type Problem struct {
	Path    string
	Message string
}

// Problems is every ambiguity found, in document order; it is an error.
type Problems []Problem

func (p Problems) Error() string {
	var b strings.Builder
	b.WriteString("ambiguous json: ")
	for i, x := range p {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(x.Path + ": " + x.Message)
	}
	return b.String()
}

// Check scans data, which is to be decoded into a value of type t (a
// pointer to it works too). It returns nil, a *SyntaxError, or Problems.
func Check(data []byte, t reflect.Type) error {
	s := &scanner{data: data, types: map[reflect.Type]*fields{}}
	s.skipSpace()
	if s.pos == len(data) {
		return &SyntaxError{Offset: s.pos, Msg: "no value", Empty: true}
	}
	if err := s.value(shapeOf(t), "", 0); err != nil {
		return err
	}
	s.skipSpace()
	if s.pos != len(data) {
		return &SyntaxError{Offset: s.pos, Msg: "more than one value", Trailing: true}
	}
	if len(s.problems) > 0 {
		return s.problems
	}
	return nil
}

// shape is what the destination expects at one place in the document.
type shape struct {
	kind shapeKind
	t    reflect.Type // struct type for object shapes
	elem reflect.Type // element type for arrays and maps
}

type shapeKind int

const (
	anything shapeKind = iota // any JSON: only duplicates and UTF-8 are checked
	object                    // a struct: member names are checked against its fields
	mapOf                     // map[string]X
	arrayOf
)

var (
	timeType        = reflect.TypeOf(time.Time{})
	rawType         = reflect.TypeOf(json.RawMessage{})
	unmarshalerType = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
)

func shapeOf(t reflect.Type) shape {
	if t == nil {
		return shape{}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType || t == rawType || reflect.PointerTo(t).Implements(unmarshalerType) {
		return shape{}
	}
	switch t.Kind() {
	case reflect.Struct:
		return shape{kind: object, t: t}
	case reflect.Map:
		if t.Key().Kind() == reflect.String {
			return shape{kind: mapOf, elem: t.Elem()}
		}
	case reflect.Slice, reflect.Array:
		return shape{kind: arrayOf, elem: t.Elem()}
	}
	return shape{}
}

// fields of a struct as encoding/json names them.
type fields struct {
	byName map[string]reflect.Type
	names  []string
}

func (s *scanner) fieldsOf(t reflect.Type) *fields {
	if f, ok := s.types[t]; ok {
		return f
	}
	f := &fields{byName: map[string]reflect.Type{}}
	s.types[t] = f
	collect(t, f, 0)
	return f
}

// collect gathers t's JSON members, promoting those of embedded structs
// without a tag (outer names win, as in encoding/json).
func collect(t reflect.Type, f *fields, depth int) {
	if depth > 8 {
		return
	}
	var embedded []reflect.Type
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if sf.Anonymous && name == "" {
			et := sf.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				embedded = append(embedded, et)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if _, dup := f.byName[name]; !dup {
			f.byName[name] = sf.Type
			f.names = append(f.names, name)
		}
	}
	for _, et := range embedded {
		collect(et, f, depth+1)
	}
}

type scanner struct {
	data     []byte
	pos      int
	problems Problems
	types    map[reflect.Type]*fields
}

func (s *scanner) problem(path, msg string) {
	if len(s.problems) < maxProblems {
		if path == "" {
			path = "(body)"
		}
		s.problems = append(s.problems, Problem{Path: path, Message: msg})
	}
}

func (s *scanner) syntax(msg string) error { return &SyntaxError{Offset: s.pos, Msg: msg} }

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) value(sh shape, path string, depth int) error {
	if depth >= MaxDepth {
		return s.syntax("nested too deeply")
	}
	s.skipSpace()
	if s.pos >= len(s.data) {
		return s.syntax("unexpected end")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(sh, path, depth)
	case c == '[':
		return s.array(sh, path, depth)
	case c == '"':
		_, _, err := s.str(path, false)
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.syntax("unexpected character")
}

func (s *scanner) object(sh shape, path string, depth int) error {
	s.pos++ // {
	var f *fields
	if sh.kind == object {
		f = s.fieldsOf(sh.t)
	}
	seen := map[string]bool{}
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.syntax("expected a member name")
		}
		key, valid, err := s.str(path, true)
		if err != nil {
			return err
		}
		member := join(path, key)
		var next shape
		switch {
		case !valid: // reported by str
		case seen[key]:
			s.problem(member, "appears more than once")
		case f != nil:
			if ft, ok := f.byName[key]; ok {
				next = shapeOf(ft)
			} else if name, ok := f.folded(key); ok {
				s.problem(member, "is not a known field; names are case-sensitive: did you mean "+strconv.Quote(name)+"?")
			} else {
				s.problem(member, "is not a known field")
			}
		case sh.kind == mapOf:
			next = shapeOf(sh.elem)
		}
		seen[key] = true
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.syntax("expected ':'")
		}
		s.pos++
		if err := s.value(next, member, depth+1); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.syntax("unexpected end")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.syntax("expected ',' or '}'")
		}
	}
}

// folded finds the field encoding/json would match key to when case is
// ignored.
func (f *fields) folded(key string) (string, bool) {
	for _, n := range f.names {
		if strings.EqualFold(n, key) {
			return n, true
		}
	}
	return "", false
}

func (s *scanner) array(sh shape, path string, depth int) error {
	s.pos++ // [
	var elem shape
	if sh.kind == arrayOf {
		elem = shapeOf(sh.elem)
	}
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := s.value(elem, path+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.syntax("unexpected end")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.syntax("expected ',' or ']'")
		}
	}
}

// str scans a string at s.pos. It returns the decoded text when decode is
// set (member names); invalid UTF-8 and lone surrogates are problems at
// path, not syntax errors, because encoding/json takes them.
func (s *scanner) str(path string, decode bool) (text string, valid bool, err error) {
	s.pos++ // opening quote
	var b []byte
	bad := false
	for {
		if s.pos >= len(s.data) {
			return "", false, s.syntax("unterminated string")
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			if bad {
				p := path
				if decode {
					p = join(path, string(b))
				}
				s.problem(p, "must be valid UTF-8 (no invalid bytes, no unpaired surrogate escapes)")
			}
			return string(b), !bad, nil
		case c < 0x20:
			return "", false, s.syntax("control character in string")
		case c == '\\':
			r, n, ok := s.escape()
			if n == 0 {
				return "", false, s.syntax("invalid escape")
			}
			s.pos += n
			if !ok {
				bad = true
				r = utf8.RuneError
			}
			if decode {
				b = utf8.AppendRune(b, r)
			}
		case c < utf8.RuneSelf:
			s.pos++
			if decode {
				b = append(b, c)
			}
		default:
			r, n := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && n == 1 {
				bad = true
			}
			if decode {
				b = append(b, s.data[s.pos:s.pos+n]...)
			}
			s.pos += n
		}
	}
}

// escape decodes the escape at s.pos. n is its length (0: malformed); ok
// is false for an unpaired surrogate.
func (s *scanner) escape() (r rune, n int, ok bool) {
	if s.pos+1 >= len(s.data) {
		return 0, 0, false
	}
	switch s.data[s.pos+1] {
	case '"', '\\', '/':
		return rune(s.data[s.pos+1]), 2, true
	case 'b':
		return '\b', 2, true
	case 'f':
		return '\f', 2, true
	case 'n':
		return '\n', 2, true
	case 'r':
		return '\r', 2, true
	case 't':
		return '\t', 2, true
	case 'u':
		r1, ok1 := hex4(s.data, s.pos+2)
		if !ok1 {
			return 0, 0, false
		}
		switch {
		case r1 >= 0xD800 && r1 < 0xDC00: // high surrogate: a low one must follow
			if s.pos+7 < len(s.data) && s.data[s.pos+6] == '\\' && s.data[s.pos+7] == 'u' {
				if r2, ok2 := hex4(s.data, s.pos+8); ok2 && r2 >= 0xDC00 && r2 < 0xE000 {
					return (r1-0xD800)<<10 + (r2 - 0xDC00) + 0x10000, 12, true
				}
			}
			return r1, 6, false
		case r1 >= 0xDC00 && r1 < 0xE000:
			return r1, 6, false
		}
		return r1, 6, true
	}
	return 0, 0, false
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func (s *scanner) number() error {
	if s.data[s.pos] == '-' {
		s.pos++
	}
	digits := func() int {
		n := 0
		for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	switch {
	case s.pos < len(s.data) && s.data[s.pos] == '0':
		s.pos++
	case digits() == 0:
		return s.syntax("invalid number")
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if digits() == 0 {
			return s.syntax("invalid number")
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if digits() == 0 {
			return s.syntax("invalid number")
		}
	}
	return nil
}

func (s *scanner) literal(word string) error {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.syntax("invalid literal")
	}
	s.pos += len(word)
	return nil
}

// join appends a member name to a path. Names are echoed to the client,
// so a long one is cut and an unprintable one quoted.
func join(path, key string) string {
	if len(key) > 64 {
		key = strings.ToValidUTF8(key[:64], "") + "…"
	}
	if !utf8.ValidString(key) || strings.ContainsAny(key, ".[]\"") || strings.IndexFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		key = strconv.Quote(strings.ToValidUTF8(key, "\uFFFD"))
	}
	if path == "" {
		return key
	}
	return path + "." + key
}
