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

// provinces are Turkey's 81 provinces as they are spelled, by their key.
var provinces = func() map[string]string {
	names := []string{"Adana", "Adıyaman", "Afyonkarahisar", "Ağrı", "Amasya", "Ankara", "Antalya", "Artvin", "Aydın",
		"Balıkesir", "Bilecik", "Bingöl", "Bitlis", "Bolu", "Burdur", "Bursa", "Çanakkale", "Çankırı", "Çorum",
		"Denizli", "Diyarbakır", "Edirne", "Elazığ", "Erzincan", "Erzurum", "Eskişehir", "Gaziantep", "Giresun",
		"Gümüşhane", "Hakkari", "Hatay", "Isparta", "Mersin", "İstanbul", "İzmir", "Kars", "Kastamonu", "Kayseri",
		"Kırklareli", "Kırşehir", "Kocaeli", "Konya", "Kütahya", "Malatya", "Manisa", "Kahramanmaraş", "Mardin",
		"Muğla", "Muş", "Nevşehir", "Niğde", "Ordu", "Rize", "Sakarya", "Samsun", "Siirt", "Sinop", "Sivas",
		"Tekirdağ", "Tokat", "Trabzon", "Tunceli", "Şanlıurfa", "Uşak", "Van", "Yozgat", "Zonguldak", "Aksaray",
		"Bayburt", "Karaman", "Kırıkkale", "Batman", "Şırnak", "Bartın", "Ardahan", "Iğdır", "Yalova", "Karabük",
		"Kilis", "Osmaniye", "Düzce"}
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[Key(n)] = n
	}
	return m
}()

// Province is the name reports group a province under: the province's own
// spelling when the name is one of Turkey's 81 however it was typed
// ("IZMIR" and "izmir" are "İzmir"), otherwise the name as given, trimmed.
func Province(name string) string {
	if p, ok := provinces[Key(name)]; ok {
		return p
	}
	return strings.TrimSpace(name)
}
