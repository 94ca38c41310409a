package validate

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// A vehicle plate is stored in one canonical spelling so that the same
// plate is one plate: upper case by Turkish rules (ı -> I, and i -> I
// since plates carry no dotted İ), without the spaces, dashes and dots
// people type between its groups. "34 abc 123", "34-ABC-123" and
// "34ABC123" are all 34ABC123.
//
// A Turkish plate is NN L[LL] N...: a province code 01-81, one to three
// serial letters from the 23 that plates use (the Turkish alphabet without
// Ç, Ğ, İ, Ö, Ş, Ü, and no Q, W or X), then digits: four or five after one
// letter, three or four after two, two or three after three. Anything
// else of 2-16 letters and digits is accepted as a foreign plate.

const maxPlate = 16

var (
	turkishPlateRe = regexp.MustCompile(`^(0[1-9]|[1-7][0-9]|8[01])([A-PR-VYZ]{1,3})([0-9]{2,5})$`)
	plateSeparator = strings.NewReplacer(" ", "", "-", "", ".", "", "\u00a0", "")
)

// CanonicalPlate returns the canonical spelling of a plate as typed. It
// does not validate; Plate does.
func CanonicalPlate(s string) string {
	s = strings.ToUpperSpecial(unicode.TurkishCase, norm.NFC.String(s))
	s = strings.ReplaceAll(s, "İ", "I")
	return plateSeparator.Replace(strings.TrimSpace(s))
}

// TurkishPlate reports whether a canonical plate has the standard
// Turkish form.
func TurkishPlate(canonical string) bool {
	m := turkishPlateRe.FindStringSubmatch(canonical)
	if m == nil {
		return false
	}
	letters, digits := len(m[2]), len(m[3])
	return digits >= 5-letters && digits <= 6-letters
}

// Plate checks a plate field and returns its canonical spelling and
// whether it is a Turkish plate. A plate that starts like a Turkish one
// (a province code, letters, digits) but breaks the rules is still taken
// as foreign: a tourist's plate must never stop a tow.
func (e *Errors) Plate(field, value string, required bool) (plate string, turkish bool) {
	if !utf8.ValidString(value) {
		e.Add(field, "must be valid UTF-8")
		return "", false
	}
	if i := strings.IndexFunc(value, func(r rune) bool { return r != '\u00a0' && invisible(r) }); i >= 0 {
		e.Add(field, "must not contain "+describe(value, i))
		return "", false
	}
	p := CanonicalPlate(value)
	switch {
	case p == "":
		if required {
			e.Add(field, "is required")
		}
		return "", false
	case utf8.RuneCountInString(p) < 2 || utf8.RuneCountInString(p) > maxPlate ||
		strings.IndexFunc(p, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) >= 0:
		e.Add(field, "must be 2-16 letters and digits (spaces, dashes and dots between groups are dropped)")
		return p, false
	}
	return p, TurkishPlate(p)
}

var phoneRe = regexp.MustCompile(`^\+?[0-9]{7,15}$`)

// Phone checks a phone number and returns it without the spaces, dashes
// and parentheses people type in it: an optional + and 7-15 digits.
func (e *Errors) Phone(field, value string, required bool) string {
	phone := strings.NewReplacer(" ", "", "-", "", "(", "", ")", "").Replace(strings.TrimSpace(value))
	switch {
	case phone == "":
		if required {
			e.Add(field, "is required")
		}
	case !phoneRe.MatchString(phone):
		e.Add(field, "must be a phone number in international form, e.g. +905551112233")
	}
	return phone
}
