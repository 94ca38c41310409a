package e2e_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

type spot struct {
	name     string
	lat, lng float64
}

// TestBusyPanel: a morning in İstanbul as the panel shows it, drivers on
// jobs at every step, requests nobody could take, an insurer that is down.
// The panel raises the insurer's alert without a reload; the screenshots of
// this scene are the README's.
func TestBusyPanel(t *testing.T) {
	h.need(t)
	opsUser, opsPass := h.user(t, "operator", "ops")
	custUser, custPass := h.user(t, "customer", "elif")
	customer := h.login(t, custUser, custPass)
	ops := h.login(t, opsUser, opsPass)

	panel := h.tab(t, "panel")
	panel.run(chromedp.Navigate(h.base + "/#board&access_token=" + ops))
	panel.until(`!!document.querySelector('.board [data-column=dispatching]')`, 10*time.Second)

	// Drivers on jobs, each job 250 m from its driver and every driver
	// kilometres from the others (dispatch's round is 1 km).
	onJob := []struct {
		spot
		plate, name, step, service string
	}{
		{spot{"Fatih", 41.0150, 28.9500}, "34TOW11", "Hasan Çelik", "assigned", "tow"},
		{spot{"Beşiktaş", 41.0430, 29.0050}, "34TOW12", "Emre Şahin", "en_route", "jump_start"},
		{spot{"Kadıköy", 40.9900, 29.0300}, "34TOW13", "Burak Aydın", "arrived", "flat_tire"},
		{spot{"Üsküdar", 41.0260, 29.0550}, "34TOW14", "Murat Koç", "in_service", "fuel_delivery"},
	}
	var first string // the first job, in Fatih
	for i, j := range onJob {
		u, p := h.user(t, "driver", "drv", "--name", j.name, "--vehicle-plate", j.plate, "--capabilities", "tow,jump_start,flat_tire,fuel_delivery,lockout")
		drv := h.login(t, u, p)
		h.driverAt(t, drv, j.lat, j.lng)
		req := h.newRequest(t, customer, j.service, j.lat+0.002, j.lng+0.001, "İstanbul", fmt.Sprintf("34JOB%02d", i))
		if first == "" {
			first = req.ID
		}
		offer := h.offerFor(t, drv, req.ID)
		h.api(t, drv, "POST", "/v1/offers/"+offer+"/accept", nil, 200, nil)
		for _, step := range []string{"en_route", "arrived", "in_service"} {
			if j.step == "assigned" || (step == "arrived" && j.step == "en_route") || (step == "in_service" && j.step != "in_service") {
				break
			}
			h.api(t, drv, "POST", "/v1/requests/"+req.ID+"/progress", map[string]string{"status": step}, 200, nil)
		}
	}
	// Free drivers.
	for _, s := range []spot{{"Bakırköy", 40.9800, 28.8700}, {"Şişli", 41.0600, 28.9850}, {"Maltepe", 40.9350, 29.1300}} {
		u, p := h.user(t, "driver", "drv", "--name", "Driver "+s.name, "--vehicle-plate", "34FRE"+fmt.Sprint(h.seq.Load()), "--capabilities", "tow,jump_start,flat_tire,lockout")
		h.driverAt(t, h.login(t, u, p), s.lat, s.lng)
	}
	// Requests no driver is near: unfulfilled, for the operators.
	for i, s := range []spot{{"Esenyurt", 41.0300, 28.6700}, {"Pendik", 40.8770, 29.2500}, {"Sarıyer", 41.1700, 29.0500}} {
		h.newRequest(t, customer, []string{"tow", "lockout", "winch"}[i], s.lat, s.lng, "İstanbul", fmt.Sprintf("34UNF%02d", i))
	}
	// Requests insured by sompo, which is down: they wait for the insurer,
	// and its breaker opens.
	for i, s := range []spot{{"Ataşehir", 40.9900, 29.1100}, {"Beylikdüzü", 40.9800, 28.6400}, {"Başakşehir", 41.0900, 28.8000}} {
		h.newRequestWith(t, customer, "sompo", "tow", s.lat, s.lng, "İstanbul", fmt.Sprintf("34SMP%02d", i))
	}

	panel.until(`!!document.querySelector('.toast[data-kind=breaker]')`, 60*time.Second)
	panel.until(`document.querySelectorAll('[data-column=attention] .card').length >= 3 && document.querySelectorAll('[data-column=insurer] .card').length >= 3`, 30*time.Second)
	for _, c := range []string{"assigned", "en_route", "arrived", "in_service"} {
		panel.until(fmt.Sprintf(`document.querySelectorAll('[data-column=%s] .card').length >= 1`, c), 10*time.Second)
	}
	// The unfulfilled requests' alerts have been seen; the insurer's stays.
	panel.run(chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('.toast[data-kind=unfulfilled]').forEach((t) => t.remove())`))
	panel.shot("panel")

	panel.click(`[data-view=insurers]`)
	panel.until(`document.querySelector('.insurer[data-insurer=sompo] .breaker')?.textContent === 'open'`, 10*time.Second)
	panel.shot("insurers")

	// The fleet map over İstanbul: free and busy drivers, open requests.
	panel.click(`[data-view=map]`)
	panel.until(`document.querySelectorAll('path.drv-busy').length >= 4 && document.querySelectorAll('path.drv-free').length >= 3`, 10*time.Second)
	panel.run(chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('.toast').forEach((t) => t.remove())`))
	// Opening a request flies the map to it: central İstanbul.
	panel.run(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector('.req-pin[data-request-id=%s]').click()`, jsString(first))))
	panel.until(`!!document.querySelector('.drawer h2[data-status]')`, 10*time.Second)
	panel.click(`.drawer .close`)
	panel.until(`document.querySelector('.drawer').hidden && document.querySelectorAll('path.drv-busy').length >= 4`, 5*time.Second)
	panel.until(`document.querySelector('.map').dataset.moving === 'false'`, 5*time.Second)
	panel.shot("fleet-map")
}

// offerFor waits for the driver's offer for a request and returns its id.
func (h *harness) offerFor(t *testing.T, driver, requestID string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var offers struct {
			Items []struct {
				OfferID   string `json:"offer_id"`
				RequestID string `json:"request_id"`
			} `json:"items"`
		}
		h.api(t, driver, "GET", "/v1/drivers/me/offers", nil, 200, &offers)
		for _, o := range offers.Items {
			if o.RequestID == requestID {
				return o.OfferID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no offer for %s within 20s: %+v", requestID, offers.Items)
		}
		time.Sleep(50 * time.Millisecond) // polling for a condition, with a deadline
	}
}
