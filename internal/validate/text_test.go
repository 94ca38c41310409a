package validate

import (
	"strings"
	"testing"
)

func TestTextAndLine(t *testing.T) {
	decomposed := "I\u0307stanbul" // I + COMBINING DOT ABOVE
	cases := []struct {
		name      string
		value     string
		line      bool // check as Line instead of Text
		want      string
		wantError string // substring of the message; "" for no error
	}{
		{"plain", "  Fatih, İstanbul ", false, "Fatih, İstanbul", ""},
		{"decomposed becomes NFC", decomposed, true, "İstanbul", ""},
		{"NFC counts characters after composing", strings.Repeat("e\u0301", 10), true, strings.Repeat("é", 10), ""},
		{"invalid UTF-8", "Ay\xffşe", true, "", "valid UTF-8"},
		{"invalid UTF-8 in text", "note \xc3\x28", false, "", "valid UTF-8"},
		{"right-to-left override in a name", "Ayşe\u202eevl", true, "", "bidirectional"},
		{"right-to-left override in notes", "call me \u202e 1234", false, "", "bidirectional"},
		{"isolate in notes", "a \u2066b\u2069 c", false, "", "bidirectional"},
		{"embedding in notes", "\u202aleft", false, "", "bidirectional"},
		{"newline in notes", "first line\r\nsecond\tline", false, "first line\nsecond\tline", ""},
		{"newline in a name", "Ayşe\nYıl", true, "", "line breaks"},
		{"tab in a name", "Ayşe\tYıl", true, "", "control"},
		{"NUL in notes", "a\x00b", false, "", "control"},
		{"escape in notes", "a\x1b[31mred", false, "", "control"},
		{"zero-width joiner in a name", "Ay\u200dşe", true, "", "invisible"},
		{"right-to-left mark in a name", "Ayşe\u200f", true, "", "invisible"},
		{"right-to-left mark in notes is allowed", "שלום\u200f ok", false, "שלום\u200f ok", ""},
		{"BOM in a name", "\ufeffAyşe", true, "", "invisible"},
		{"line separator in a name", "a\u2028b", true, "", "invisible"},
		{"too long after NFC", strings.Repeat("ş", 11), true, "", "at most 10"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var errs Errors
			var got string
			// Ten characters at most: the NFC cases are exactly ten.
			if tc.line {
				got = errs.Line("f", tc.value, false, 10)
			} else {
				got = errs.Text("f", tc.value, false, 100)
			}
			if tc.wantError == "" {
				if len(errs) != 0 {
					t.Fatalf("unexpected error %v", errs)
				}
				if got != tc.want {
					t.Errorf("got %q, want %q", got, tc.want)
				}
				return
			}
			if len(errs) != 1 || errs[0].Field != "f" || !strings.Contains(errs[0].Message, tc.wantError) {
				t.Errorf("errors %v, want one for f containing %q", errs, tc.wantError)
			}
		})
	}
	var errs Errors
	if errs.Line("f", "  ", true, 10); len(errs) != 1 || errs[0].Message != "is required" {
		t.Errorf("blank required: %v", errs)
	}
}

func TestPlate(t *testing.T) {
	cases := []struct {
		in      string
		want    string
		turkish bool
		bad     string
	}{
		{"34ABC123", "34ABC123", true, ""},
		{"34 abc 123", "34ABC123", true, ""},
		{"34-ABC-123", "34ABC123", true, ""},
		{" 34.abc.123 ", "34ABC123", true, ""},
		{"34\u00a0ABC\u00a0123", "34ABC123", true, ""},
		{"06 ı 1234", "06I1234", true, ""},   // dotless ı upper-cases to I
		{"06 i 1234", "06I1234", true, ""},   // Turkish i -> İ, which plates write as I
		{"06 A 12345", "06A12345", true, ""}, // one letter: 4 or 5 digits
		{"06 A 123", "06A123", false, ""},    // one letter needs 4-5 digits
		{"06 AB 123", "06AB123", true, ""},
		{"06 AB 1234", "06AB1234", true, ""},
		{"06 AB 12345", "06AB12345", false, ""},
		{"06 ABC 12", "06ABC12", true, ""},
		{"06 ABC 1234", "06ABC1234", false, ""},
		{"81 Z 0001", "81Z0001", true, ""},
		{"82 A 1234", "82A1234", false, ""}, // no province 82
		{"00 A 1234", "00A1234", false, ""}, // nor 00
		{"34 QWX 12", "34QWX12", false, ""}, // Q, W, X are not plate letters
		{"34 ÇÖŞ 12", "34ÇÖŞ12", false, ""}, // nor Ç, Ö, Ş
		{"M-AB 1234", "MAB1234", false, ""}, // German
		{"B 123 ABC", "B123ABC", false, ""},
		{"X", "", false, "2-16"},
		{"34 AB/123", "", false, "2-16"},
		{"34\u202eABC123", "", false, "bidirectional"},
		{"34\tABC", "", false, "control"},
		{"34\xffABC", "", false, "UTF-8"},
	}
	for _, tc := range cases {
		var errs Errors
		got, turkish := errs.Plate("p", tc.in, true)
		if tc.bad != "" {
			if len(errs) != 1 || !strings.Contains(errs[0].Message, tc.bad) {
				t.Errorf("%q: errors %v, want one containing %q", tc.in, errs, tc.bad)
			}
			continue
		}
		if len(errs) != 0 || got != tc.want || turkish != tc.turkish {
			t.Errorf("%q: got %q turkish=%v errs %v, want %q turkish=%v", tc.in, got, turkish, errs, tc.want, tc.turkish)
		}
	}
}

func TestPhone(t *testing.T) {
	var errs Errors
	if got := errs.Phone("p", " +90 (555) 111-22-33 ", true); got != "+905551112233" || len(errs) != 0 {
		t.Errorf("got %q %v", got, errs)
	}
	for _, bad := range []string{"call me", "+90555\u202e1112233", "+９０５５５１１１２２３３", "12"} {
		var errs Errors
		errs.Phone("p", bad, true)
		if len(errs) != 1 {
			t.Errorf("%q accepted", bad)
		}
	}
}
