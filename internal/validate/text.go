package validate

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Text is stored as one spelling: what a client sends is checked and
// normalised here before anything keeps it, so that "İstanbul" typed with
// a combining dot is the same province as the precomposed one, and no
// stored string can reorder what an operator's screen shows around it
// (the "Trojan Source" bidirectional controls).
//
// Two kinds of field:
//
//   - Text: free text a person writes (notes, addresses, reasons). Line
//     breaks and tabs are allowed; other control characters and the
//     bidirectional embedding, override and isolate characters are not.
//   - Line: a one-line value that identifies or labels something (names,
//     places, makes, policy numbers). No control characters at all and no
//     invisible format characters (bidi marks, zero-width joiners, soft
//     hyphens), which would make two different strings look the same.
//
// Both refuse invalid UTF-8 (never silently replaced), normalise to NFC,
// trim surrounding space and count length in characters after
// normalisation.

// Text checks and normalises a free-text field; see the kinds above. It
// returns the value to store.
func (e *Errors) Text(field, value string, required bool, max int) string {
	v, ok := e.prepare(field, value, required, max)
	if !ok {
		return v
	}
	if i := strings.IndexFunc(v, func(r rune) bool { return (unicode.IsControl(r) && r != '\n' && r != '\t') || bidiControl(r) }); i >= 0 {
		e.Add(field, "must not contain "+describe(v, i))
	}
	return v
}

// Line checks and normalises a one-line field; see the kinds above.
func (e *Errors) Line(field, value string, required bool, max int) string {
	v, ok := e.prepare(field, value, required, max)
	if !ok {
		return v
	}
	if i := strings.IndexFunc(v, invisible); i >= 0 {
		e.Add(field, "must not contain "+describe(v, i))
	}
	return v
}

// prepare does what both kinds share. ok is false when a problem was
// recorded or the value is empty.
func (e *Errors) prepare(field, value string, required bool, max int) (string, bool) {
	if !utf8.ValidString(value) {
		e.Add(field, "must be valid UTF-8")
		return strings.ToValidUTF8(value, "\uFFFD"), false
	}
	v := Clean(value)
	switch {
	case v == "":
		if required {
			e.Add(field, "is required")
		}
		return v, false
	case utf8.RuneCountInString(v) > max:
		e.Add(field, "must be at most "+itoa(max)+" characters")
		return v, false
	}
	return v, true
}

// Clean is a text value as Yolda keeps it: NFC, Windows line ends as
// "\n", without surrounding space. Text and Line return it; code that
// copies a value Struct checked calls it directly.
func Clean(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(norm.NFC.String(s), "\r\n", "\n"))
}

// bidiControl reports the characters that change the display order of
// the text around them: embeddings and overrides (U+202A-U+202E) and
// isolates (U+2066-U+2069). The implicit marks (U+200E, U+200F, U+061C)
// only nudge neutral characters and are allowed in free text.
func bidiControl(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// invisible reports what a one-line value must not hold: control
// characters (tabs and line breaks included), format characters (every
// bidi control and mark, zero-width characters, soft hyphen, BOM), line
// and paragraph separators, and private-use characters.
func invisible(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Co)
}

// describe names the offending character at byte i of s for a message.
func describe(s string, i int) string {
	r, _ := utf8.DecodeRuneInString(s[i:])
	switch {
	case r == '\n' || r == '\r':
		return "line breaks"
	case bidiControl(r):
		return "bidirectional control characters (U+" + hex4(r) + ")"
	case unicode.IsControl(r):
		return "control characters"
	}
	return "invisible formatting characters (U+" + hex4(r) + ")"
}

func hex4(r rune) string {
	const digits = "0123456789ABCDEF"
	var b []byte
	for v := uint32(r); v > 0 || len(b) < 4; v >>= 4 {
		b = append([]byte{digits[v&0xF]}, b...)
	}
	return string(b)
}
