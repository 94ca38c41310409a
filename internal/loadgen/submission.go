package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Submission is a POST /v1/requests body as the public contract spells it.
// It is a struct rather than a map so that a caller (the demo simulator)
// can adjust a field before sending, and so that marshalling stays cheap
// on the load generator's hot path.
type Submission struct {
	ServiceType string    `json:"service_type"`
	Location    Location  `json:"location"`
	Destination *Location `json:"destination,omitempty"`
	Vehicle     Vehicle   `json:"vehicle"`
	Policy      Policy    `json:"policy"`
	Contact     Contact   `json:"contact"`
	Notes       string    `json:"notes,omitempty"`
}

// Location is a point with its human description.
type Location struct {
	Lat      float64 `json:"lat"`
	Lng      float64 `json:"lng"`
	Address  string  `json:"address,omitempty"`
	Province string  `json:"province,omitempty"`
	District string  `json:"district,omitempty"`
}

// Vehicle is the broken-down vehicle.
type Vehicle struct {
	Plate string `json:"plate"`
	Make  string `json:"make,omitempty"`
	Model string `json:"model,omitempty"`
	Type  string `json:"type"`
}

// Policy names the insurance policy that pays for the job.
type Policy struct {
	Insurer      string `json:"insurer"`
	PolicyNumber string `json:"policy_number"`
}

// Contact is who the driver calls on arrival.
type Contact struct {
	Name  string `json:"name"`
	Phone string `json:"phone"`
}

// DefaultInsurers returns the insurer codes drawn from when none are given.
// A server only accepts codes it has configured, so a benchmark against a
// differently configured server must pass its own list.
func DefaultInsurers() []string { return []string{"anadolu", "axa", "allianz"} }

// Turkey's bounding box as the benchmark understands it. Generated points
// are clamped into it, so a jitter near a border never leaves the country
// as far as a consumer of the data can tell.
const (
	minLat, maxLat = 36.0, 42.0
	minLng, maxLng = 26.0, 45.0
)

// The tables below are read-only. They live at package level so that
// RandomSubmission does not rebuild them on every call.

type province struct {
	name      string
	plate     int // the province's licence-plate code
	lat, lng  float64
	weight    int // roughly proportional to road traffic, so reports look plausible
	districts []string
}

var provinces = []province{
	{"İstanbul", 34, 41.0082, 28.9784, 18, []string{"Fatih", "Kadıköy", "Beşiktaş", "Üsküdar", "Şişli", "Bakırköy", "Pendik", "Esenyurt", "Ümraniye", "Beylikdüzü"}},
	{"Ankara", 6, 39.9334, 32.8597, 7, []string{"Çankaya", "Keçiören", "Yenimahalle", "Mamak", "Etimesgut", "Sincan"}},
	{"İzmir", 35, 38.4237, 27.1428, 5, []string{"Konak", "Bornova", "Karşıyaka", "Buca", "Bayraklı", "Çiğli"}},
	{"Bursa", 16, 40.1885, 29.0610, 4, []string{"Osmangazi", "Nilüfer", "Yıldırım", "İnegöl"}},
	{"Antalya", 7, 36.8969, 30.7133, 3, []string{"Muratpaşa", "Konyaaltı", "Kepez", "Alanya", "Manavgat"}},
	{"Kocaeli", 41, 40.7654, 29.9408, 3, []string{"İzmit", "Gebze", "Darıca", "Körfez"}},
	{"Adana", 1, 37.0000, 35.3213, 2, []string{"Seyhan", "Çukurova", "Yüreğir", "Ceyhan"}},
	{"Konya", 42, 37.8746, 32.4932, 2, []string{"Selçuklu", "Meram", "Karatay", "Ereğli"}},
	{"Gaziantep", 27, 37.0662, 37.3833, 2, []string{"Şahinbey", "Şehitkamil", "Nizip"}},
	{"Şanlıurfa", 63, 37.1591, 38.7969, 1, []string{"Haliliye", "Eyyübiye", "Karaköprü", "Siverek"}},
	{"Mersin", 33, 36.8121, 34.6415, 2, []string{"Yenişehir", "Mezitli", "Toroslar", "Tarsus"}},
	{"Diyarbakır", 21, 37.9144, 40.2306, 1, []string{"Bağlar", "Kayapınar", "Yenişehir", "Sur"}},
	{"Hatay", 31, 36.2021, 36.1603, 1, []string{"Antakya", "İskenderun", "Defne", "Dörtyol"}},
	{"Manisa", 45, 38.6191, 27.4289, 1, []string{"Yunusemre", "Şehzadeler", "Akhisar", "Turgutlu"}},
	{"Kayseri", 38, 38.7312, 35.4787, 1, []string{"Melikgazi", "Kocasinan", "Talas"}},
	{"Samsun", 55, 41.2928, 36.3313, 1, []string{"İlkadım", "Atakum", "Canik", "Bafra"}},
	{"Balıkesir", 10, 39.6484, 27.8826, 1, []string{"Karesi", "Altıeylül", "Bandırma", "Edremit"}},
	{"Kahramanmaraş", 46, 37.5858, 36.9371, 1, []string{"Onikişubat", "Dulkadiroğlu", "Elbistan"}},
	{"Van", 65, 38.4891, 43.4089, 1, []string{"İpekyolu", "Tuşba", "Erciş"}},
	{"Aydın", 9, 37.8560, 27.8416, 1, []string{"Efeler", "Nazilli", "Kuşadası", "Didim"}},
	{"Denizli", 20, 37.7765, 29.0864, 1, []string{"Merkezefendi", "Pamukkale", "Çivril"}},
	{"Sakarya", 54, 40.7569, 30.3781, 1, []string{"Adapazarı", "Serdivan", "Erenler", "Hendek"}},
	{"Tekirdağ", 59, 40.9780, 27.5110, 1, []string{"Süleymanpaşa", "Çorlu", "Çerkezköy"}},
	{"Muğla", 48, 37.2153, 28.3636, 1, []string{"Menteşe", "Bodrum", "Fethiye", "Marmaris"}},
	{"Eskişehir", 26, 39.7767, 30.5206, 1, []string{"Odunpazarı", "Tepebaşı"}},
	{"Trabzon", 61, 41.0015, 39.7178, 1, []string{"Ortahisar", "Akçaabat", "Of"}},
	{"Erzurum", 25, 39.9043, 41.2679, 1, []string{"Yakutiye", "Palandöken", "Aziziye"}},
	{"Malatya", 44, 38.3552, 38.3095, 1, []string{"Battalgazi", "Yeşilyurt"}},
	{"Edirne", 22, 41.6771, 26.5557, 1, []string{"Merkez", "Keşan", "Uzunköprü"}},
	{"Kars", 36, 40.6013, 43.0975, 1, []string{"Merkez", "Sarıkamış"}},
	{"Hakkari", 30, 37.5744, 43.7408, 1, []string{"Merkez", "Yüksekova"}},
}

type weighted struct {
	value  string
	weight int
}

// Tows dominate real roadside work; the rest follow a plausible mix.
var serviceTypes = []weighted{
	{"tow", 35}, {"jump_start", 20}, {"flat_tire", 20},
	{"lockout", 10}, {"fuel_delivery", 8}, {"winch", 7},
}

type model struct{ make, model string }

type vehicleType struct {
	kind   string
	weight int
	models []model
}

var vehicleTypes = []vehicleType{
	{"car", 80, []model{{"Fiat", "Egea"}, {"Renault", "Clio"}, {"Toyota", "Corolla"}, {"Volkswagen", "Passat"}, {"Hyundai", "i20"}, {"Ford", "Focus"}, {"Togg", "T10X"}, {"Dacia", "Duster"}}},
	{"light_commercial", 12, []model{{"Ford", "Transit Custom"}, {"Fiat", "Doblo"}, {"Renault", "Kangoo"}, {"Volkswagen", "Caddy"}}},
	{"motorcycle", 5, []model{{"Honda", "PCX"}, {"Yamaha", "NMAX"}, {"Bajaj", "Pulsar"}}},
	{"heavy", 3, []model{{"Mercedes-Benz", "Actros"}, {"Ford Trucks", "F-Max"}, {"BMC", "Tuğra"}}},
}

// Turkish plates leave out Q, W, X and the letters with diacritics.
const plateLetters = "ABCDEFGHIJKLMNOPRSTUVYZ"

var firstNames = []string{"Ayşe", "Mehmet", "Fatma", "Mustafa", "Emine", "Ahmet", "Zeynep", "Ali", "Elif", "Hüseyin", "Şule", "Çağlar", "Gökhan", "Özge", "İbrahim", "Büşra"}
var lastNames = []string{"Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Yıldız", "Yıldırım", "Öztürk", "Aydın", "Özdemir", "Arslan", "Doğan", "Kılıç", "Aslan", "Çetin", "Koç"}
var streets = []string{"Atatürk Cd.", "İstiklal Cd.", "Cumhuriyet Cd.", "Gazi Blv.", "İnönü Cd.", "Fevzi Çakmak Cd.", "Hastane Sk.", "Çevre Yolu", "D-100 Karayolu", "O-4 Otoyolu"}
var garages = []string{"Yetkili Servis", "Oto Sanayi Sitesi", "Özel Servis", "Lastikçi", "Otopark", "Ev adresi"}
var notes = []string{
	"Left lane, hazard lights on",
	"Sağ şeritte, dörtlüler yanıyor",
	"Akü bitti, motor çalışmıyor",
	"Anahtar araçta kaldı",
	"Lastik patladı, stepne yok",
	"Benzin bitti, otoyol kenarındayım",
	"Araç çamura saplandı",
	"Çocuklarla birlikteyiz, lütfen acele edin",
	"Near the petrol station exit",
	"Kapalı otoparkta, -2. kat",
}

// Area is a box that request locations are drawn from uniformly.
type Area struct {
	MinLat, MaxLat, MinLng, MaxLng float64
}

// Istanbul is the box over the city that dispatch's benchmarks spread
// their drivers over (about 22 x 42 km): requests drawn in it always have
// drivers in reach.
var Istanbul = Area{MinLat: 40.95, MaxLat: 41.15, MinLng: 28.75, MaxLng: 29.25}

func (a Area) point(r *rand.Rand) (lat, lng float64) {
	lat = a.MinLat + r.Float64()*(a.MaxLat-a.MinLat)
	lng = a.MinLng + r.Float64()*(a.MaxLng-a.MinLng)
	return math.Round(lat*1e6) / 1e6, math.Round(lng*1e6) / 1e6
}

// RandomSubmission draws a valid, plausible request body from r. The same
// r state and insurers give the same body, which keeps benchmarks and
// demos reproducible. An empty insurers list means DefaultInsurers.
func RandomSubmission(r *rand.Rand, insurers []string) Submission {
	return randomSubmission(r, insurers, nil)
}

// RandomSubmissionIn is RandomSubmission with the location drawn
// uniformly in area, in İstanbul's province and districts.
func RandomSubmissionIn(r *rand.Rand, insurers []string, area Area) Submission {
	return randomSubmission(r, insurers, &area)
}

func randomSubmission(r *rand.Rand, insurers []string, area *Area) Submission {
	if len(insurers) == 0 {
		insurers = DefaultInsurers()
	}
	var s Submission
	s.ServiceType = pickWeighted(r, serviceTypes, func(w weighted) int { return w.weight }).value

	p := pickWeighted(r, provinces, func(p province) int { return p.weight })
	if area != nil {
		p = provinces[0] // İstanbul
	}
	district := pick(r, p.districts)
	s.Location = Location{
		Lat:      jitter(r, p.lat, 0.08, minLat, maxLat),
		Lng:      jitter(r, p.lng, 0.08, minLng, maxLng),
		Address:  fmt.Sprintf("%s No:%d, %s, %s", pick(r, streets), 1+r.IntN(250), district, p.name),
		Province: p.name,
		District: district,
	}
	if area != nil {
		s.Location.Lat, s.Location.Lng = area.point(r)
	}

	// A winch job often ends in a tow, which is when the contract expects a
	// destination; other services rarely name one.
	var destChance float64
	switch s.ServiceType {
	case "tow":
		destChance = 1
	case "winch":
		destChance = 0.5
	default:
		destChance = 0.1
	}
	if r.Float64() < destChance {
		d := pick(r, p.districts)
		s.Destination = &Location{
			Lat:      jitter(r, s.Location.Lat, 0.15, minLat, maxLat),
			Lng:      jitter(r, s.Location.Lng, 0.15, minLng, maxLng),
			Address:  pick(r, garages) + ", " + d,
			Province: p.name,
			District: d,
		}
	}

	vt := pickWeighted(r, vehicleTypes, func(v vehicleType) int { return v.weight })
	m := pick(r, vt.models)
	// Most cars carry the plate of the province they were registered in,
	// and most break down near home.
	plateCode := p.plate
	if r.IntN(4) == 0 {
		plateCode = 1 + r.IntN(81)
	}
	s.Vehicle = Vehicle{Plate: randomPlate(r, plateCode), Make: m.make, Model: m.model, Type: vt.kind}

	s.Policy = Policy{Insurer: pick(r, insurers), PolicyNumber: fmt.Sprintf("POL-%06d", r.IntN(1_000_000))}
	s.Contact = Contact{
		Name:  pick(r, firstNames) + " " + pick(r, lastNames),
		Phone: fmt.Sprintf("+90555%07d", r.IntN(10_000_000)),
	}
	if r.IntN(10) < 3 {
		s.Notes = pick(r, notes)
	}
	return s
}

// randomPlate follows the civilian formats: 1 letter and 4 digits, 2
// letters and 3-4 digits, or 3 letters and 2-3 digits.
func randomPlate(r *rand.Rand, code int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%02d", code)
	letters := 1 + r.IntN(3)
	for range letters {
		b.WriteByte(plateLetters[r.IntN(len(plateLetters))])
	}
	var digits int
	switch letters {
	case 1:
		digits = 4
	case 2:
		digits = 3 + r.IntN(2)
	default:
		digits = 2 + r.IntN(2)
	}
	// A leading zero never appears on the numeric part of a real plate.
	lo := int(math.Pow10(digits - 1))
	fmt.Fprintf(&b, "%d", lo+r.IntN(9*lo))
	return b.String()
}

// pickWeighted draws one of xs with probability proportional to its weight.
func pickWeighted[T any](r *rand.Rand, xs []T, weight func(T) int) T {
	total := 0
	for _, x := range xs {
		total += weight(x)
	}
	n := r.IntN(total)
	for _, x := range xs {
		if n < weight(x) {
			return x
		}
		n -= weight(x)
	}
	return xs[len(xs)-1]
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// jitter moves v by up to ±spread, clamps it into [lo, hi] and rounds to
// six decimals (about 10 cm), the precision a phone reports.
func jitter(r *rand.Rand, v, spread, lo, hi float64) float64 {
	v += (r.Float64()*2 - 1) * spread
	v = min(max(v, lo), hi)
	return math.Round(v*1e6) / 1e6
}
