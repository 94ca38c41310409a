package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestCandidatesAndOffers: an operator sees the nearest free drivers able
// to do a request, by arrival estimate, and every offer made for it.
func TestCandidatesAndOffers(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		f := setupDispatch(t, engine)
		created := f.do(t, "POST", "/v1/requests", "ayse", validBody)
		if created.status != http.StatusAccepted {
			t.Fatalf("create: %d %s", created.status, created.body)
		}
		req := "/v1/requests/" + created.json(t)["id"].(string)

		var cands struct {
			Items []struct {
				DriverID     string `json:"driver_id"`
				VehiclePlate string `json:"vehicle_plate"`
				DistanceM    int    `json:"distance_m"`
				ETASeconds   int    `json:"eta_seconds"`
			} `json:"items"`
		}
		a := f.do(t, "GET", req+"/candidates", "operator", "")
		if err := json.Unmarshal([]byte(a.body), &cands); a.status != 200 || err != nil {
			t.Fatalf("candidates: %d %s", a.status, a.body)
		}
		// driver is 1.1 km north of the request, driver2 2.2 km; offline is not a
		// candidate.
		if len(cands.Items) != 2 || cands.Items[0].DriverID != f.users["driver"].ID || cands.Items[1].DriverID != f.users["driver2"].ID {
			t.Fatalf("candidates %+v, want driver then driver2", cands.Items)
		}
		if c := cands.Items[1]; c.VehiclePlate != "34TOW02" || c.DistanceM < 2100 || c.DistanceM > 2400 || c.ETASeconds <= cands.Items[0].ETASeconds {
			t.Errorf("second candidate %+v", c)
		}
		f.run(t, []step{
			{"one candidate", "GET", req + "/candidates?limit=1", "operator", "", 200, []string{`"driver_id":"` + f.users["driver"].ID}},
			{"radius too small for driver2", "GET", req + "/candidates?radius_km=2", "operator", "", 200, []string{`"vehicle_plate":"34TOW01"`}},
			{"bad radius", "GET", req + "/candidates?radius_km=0", "operator", "", 422, []string{`"field":"radius_km"`}},
			{"customers do not see drivers", "GET", req + "/candidates", "ayse", "", 403, nil},
			{"missing request", "GET", "/v1/requests/req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P/candidates", "operator", "", 404, nil},
			{"no offer yet", "GET", req + "/offers", "operator", "", 200, []string{`"items":[]`}},
		})
		f.dispatchJobs(t)
		f.run(t, []step{
			{"the offer made", "GET", req + "/offers", "operator", "", 200,
				[]string{`"driver_id":"` + f.users["driver"].ID, `"vehicle_plate":"34TOW01"`, `"round":0`, `"status":"open"`, `"decided_at":null`}},
			{"offers are staff's", "GET", req + "/offers", "driver", "", 403, nil},
		})
		if a := f.do(t, "GET", req+"/candidates?radius_km=2", "operator", ""); a.status != 200 {
			t.Errorf("candidates with an offer open: %d %s", a.status, a.body)
		}
	})
}
