package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/intake"
)

// Bodies that mean two things, and text that is not what it looks like,
// are refused with the field named by its full path; nothing is stored.
func TestAmbiguousJSONAndBadText(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f := setup(t, engine, httpapi.Options{})
		replace := func(old, new string) string {
			if !strings.Contains(validBody, old) {
				t.Fatalf("validBody lacks %q", old)
			}
			return strings.Replace(validBody, old, new, 1)
		}
		cases := []struct {
			name, path, body string
			field            string
		}{
			{"duplicate member", "/v1/requests", replace(`"service_type": "tow",`, `"service_type": "tow", "service_type": "lockout",`), "service_type"},
			{"member differing only by case", "/v1/requests", replace(`"service_type"`, `"Service_Type"`), "Service_Type"},
			{"nested member differing by case", "/v1/requests", replace(`{"lat": 41.0082`, `{"Lat": 41.0082`), "location.Lat"},
			{"nested duplicate", "/v1/requests", replace(`"plate": "34ABC123"`, `"plate": "34ABC123", "plate": "06XY99"`), "vehicle.plate"},
			{"nested unknown member", "/v1/requests", replace(`"district": "Fatih"}`, `"district": "Fatih", "foo": 1}`), "location.foo"},
			{"invalid UTF-8 byte", "/v1/requests", replace(`"Ayşe Yılmaz"`, "\"Ay\xfe\xffe\""), "contact.name"},
			{"lone surrogate escape", "/v1/requests", replace(`"Left lane, hazard lights on"`, `"Left lane \ud83d"`), "notes"},
			{"right-to-left override in a name", "/v1/requests", replace(`"Ayşe Yılmaz"`, `"Ayşe \u202eYılmaz"`), "contact.name"},
			{"isolate in notes", "/v1/requests", replace(`"Left lane, hazard lights on"`, `"Left lane \u2067on\u2069"`), "notes"},
			{"override in an address", "/v1/requests", replace(`"Fatih, İstanbul"`, `"Fatih\u202d, İstanbul"`), "location.address"},
			{"control character in a name", "/v1/requests", replace(`"Ayşe Yılmaz"`, `"Ayşe\u0007"`), "contact.name"},
			{"override in a plate", "/v1/requests", replace(`"34ABC123"`, `"34\u202eABC123"`), "vehicle.plate"},
			{"override in a phone", "/v1/requests", replace(`"+905551112233"`, `"+90555\u202e1112233"`), "contact.phone"},
			{"duplicate in login", "/v1/auth/login", `{"username":"ayse","username":"mehmet","password":"ayse-password"}`, "username"},
			{"case variant in cancel", "/v1/requests/req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P/cancel", `{"Reason":"x"}`, "Reason"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				user := "ayse"
				if tc.path == "/v1/auth/login" {
					user = ""
				}
				a := f.do(t, "POST", tc.path, user, tc.body)
				if a.status != http.StatusUnprocessableEntity {
					t.Fatalf("status %d, want 422: %s", a.status, a.body)
				}
				errs, _ := a.json(t)["errors"].([]any)
				found := false
				for _, e := range errs {
					found = found || e.(map[string]any)["field"] == tc.field
				}
				if !found {
					t.Errorf("no error for %s: %s", tc.field, a.body)
				}
			})
		}
		if page, err := f.store.Requests(context.Background(), intake.Filter{Limit: 10}); err != nil || len(page) != 0 {
			t.Errorf("refused bodies stored %d requests (err %v)", len(page), err)
		}

		// What is accepted is stored in one spelling.
		accepted := []struct {
			name, body      string
			province, plate string
			foreign         bool
		}{
			{"decomposed İ", replace(`"province": "İstanbul"`, `"province": "I\u0307stanbul"`), "İstanbul", "34ABC123", false},
			{"plate with spaces and lower case", replace(`"34ABC123"`, `"34 abc 123"`), "İstanbul", "34ABC123", false},
			{"plate with dashes", replace(`"34ABC123"`, `"34-ABC-123"`), "İstanbul", "34ABC123", false},
			{"foreign plate", replace(`"34ABC123"`, `"M-AB 1234"`), "İstanbul", "MAB1234", true},
		}
		for _, tc := range accepted {
			t.Run(tc.name, func(t *testing.T) {
				a := f.do(t, "POST", "/v1/requests", "ayse", tc.body)
				if a.status != http.StatusAccepted {
					t.Fatalf("status %d: %s", a.status, a.body)
				}
				v := a.json(t)["vehicle"].(map[string]any)
				if v["plate"] != tc.plate || (v["foreign_plate"] == true) != tc.foreign {
					t.Errorf("vehicle %v, want plate %s foreign %v", v, tc.plate, tc.foreign)
				}
				stored, err := f.store.Request(context.Background(), a.json(t)["id"].(string))
				if err != nil {
					t.Fatal(err)
				}
				if stored.Location.Province != tc.province || stored.Vehicle.Plate != tc.plate {
					t.Errorf("stored province %q plate %q, want %q %q", stored.Location.Province, stored.Vehicle.Plate, tc.province, tc.plate)
				}
			})
		}
		// The decomposed spelling finds the request filed under the composed one.
		list := f.do(t, "GET", "/v1/requests?province=I%CC%87stanbul", "ayse", "")
		if items, _ := list.json(t)["items"].([]any); list.status != 200 || len(items) != len(accepted) {
			t.Errorf("province filter in decomposed form: %d, %d items", list.status, len(items))
		}
	})
}
