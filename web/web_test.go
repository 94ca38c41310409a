package web

import (
	"encoding/json"
	"testing"
)

// TestBasemap guards the generated basemap: all 81 provinces, named as
// Turkish spells them, and roads, every point inside Turkey's box.
func TestBasemap(t *testing.T) {
	site, err := New()
	if err != nil {
		t.Fatal(err)
	}
	f, ok := site.Lookup("/assets/basemap/turkey.json")
	if !ok {
		t.Fatal("no basemap")
	}
	var fc struct {
		Features []struct {
			Properties struct {
				Kind, Name, Ref string
			} `json:"properties"`
			Geometry struct {
				Type        string          `json:"type"`
				Coordinates json.RawMessage `json:"coordinates"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(f.Body, &fc); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	roads := 0
	for _, ft := range fc.Features {
		var points [][2]float64
		switch ft.Geometry.Type {
		case "MultiPolygon":
			var mp [][][][2]float64
			if err := json.Unmarshal(ft.Geometry.Coordinates, &mp); err != nil {
				t.Fatal(err)
			}
			for _, p := range mp {
				for _, r := range p {
					if len(r) < 4 || r[0] != r[len(r)-1] {
						t.Errorf("%s: a ring of %d points that is not closed", ft.Properties.Name, len(r))
					}
					points = append(points, r...)
				}
			}
		case "LineString":
			if err := json.Unmarshal(ft.Geometry.Coordinates, &points); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range points {
			if p[0] < 25.5 || p[0] > 45 || p[1] < 35.5 || p[1] > 42.5 {
				t.Fatalf("%s %s: point %v outside Turkey", ft.Properties.Kind, ft.Properties.Name+ft.Properties.Ref, p)
			}
		}
		switch ft.Properties.Kind {
		case "province":
			names[ft.Properties.Name] = true
		case "road":
			roads++
		}
	}
	if len(names) != 81 {
		t.Errorf("%d provinces, want 81", len(names))
	}
	for _, n := range []string{"İstanbul", "İzmir", "Şanlıurfa", "Kırıkkale", "Zonguldak", "Kahramanmaraş", "Iğdır"} {
		if !names[n] {
			t.Errorf("no province %q", n)
		}
	}
	if roads < 30 {
		t.Errorf("%d roads", roads)
	}
}
