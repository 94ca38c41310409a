// Package fold makes the comparison key of a place name, so that a filter
// or a group treats "İzmir", "Izmir", "izmir" and "IZMIR" as one province,
// and "Şişli" as "sisli". It follows Turkish casing (İ/i and I/ı are pairs)
// and drops the Turkish letters' diacritics, because people type place
// names on keyboards that lack them.
//
// The SQL stores compute the same key in a generated column with
// translate/replace and lower (see the requests_province_key migrations);
// Key and those expressions must agree, and a test checks them against each
// other on both engines.
package fold

import "strings"

// Letters are the non-ASCII letters the key maps, in the order of ASCII,
// their ASCII counterparts. The migrations spell the same two strings.
const (
	Letters = "İIıŞşÇçĞğÖöÜüÂâÎîÛû"
	ASCII   = "iiissccggoouuaaiiuu"
)

var replacer = func() *strings.Replacer {
	from, to := []rune(Letters), []rune(ASCII)
	pairs := make([]string, 0, 2*len(from))
	for i := range from {
		pairs = append(pairs, string(from[i]), string(to[i]))
	}
	return strings.NewReplacer(pairs...)
}()

// Key is the comparison key of a place name: the Turkish letters mapped to
// ASCII, then ASCII letters lower-cased. Other characters are kept as they
// are (the SQL engines do not agree on lower-casing them).
func Key(name string) string {
	s := replacer.Replace(strings.TrimSpace(name))
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}
