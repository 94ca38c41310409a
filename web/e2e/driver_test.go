package e2e_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDriverApp: a driver signs in on the driver app, goes online with a
// simulated route, declines an offer (the request, with no other driver,
// needs the operators), receives another with its countdown, accepts, and
// walks the job to completed; the operator's board follows each step.
// İzmir.
func TestDriverApp(t *testing.T) {
	h.need(t)
	drvUser, drvPass := h.user(t, "driver", "mehmet", "--name", "Mehmet Demir", "--vehicle-plate", "35TOW07", "--capabilities", "jump_start,flat_tire")
	custUser, custPass := h.user(t, "customer", "zeynep")
	opsUser, opsPass := h.user(t, "operator", "ops")
	customer := h.login(t, custUser, custPass)
	ops := h.login(t, opsUser, opsPass)

	app := h.tab(t, "driver app")
	app.run(chromedp.EmulateViewport(420, 860), chromedp.Navigate(h.base+"/driver?sim=1&at=38.4200,27.1400"))
	app.until(`!!document.querySelector('form.login-card')`, 10*time.Second)
	app.run(
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), drvUser),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), drvPass),
		chromedp.Click(chromedp.CSS(`form.login-card button[type=submit]`)),
	)
	app.until(`!!document.querySelector('.pill') && !!document.querySelector('.driver-map.leaflet-container')`, 10*time.Second)
	app.click(`[data-action=toggle-online]`)
	app.until(`document.querySelector('.pill')?.dataset.online === 'true'`, 10*time.Second)

	board := h.tab(t, "panel")
	board.run(chromedp.Navigate(h.base + "/#board&access_token=" + ops))
	board.until(`!!document.querySelector('.board [data-column=dispatching]')`, 10*time.Second)

	// A first offer, declined: the request goes on without this driver.
	declined := h.newRequest(t, customer, "flat_tire", 38.4190, 27.1390, "İzmir", "35DEC001")
	first := fmt.Sprintf(`.offer-card[data-request-id=%s]`, jsString(declined.ID))
	app.until(fmt.Sprintf(`!!document.querySelector(%s)`, jsString(first)), 20*time.Second)
	app.click(first + ` [data-action=decline]`)
	app.until(`!document.querySelector('.offer-card') && document.querySelector('.driver-note').textContent === 'Offer declined.'`, 10*time.Second)
	board.until(fmt.Sprintf(`!!document.querySelector('[data-column=attention] [data-request-id=%s]')`, jsString(declined.ID)), 20*time.Second)

	// A request 300 m from the driver: the driver's offer.
	req := h.newRequest(t, customer, "jump_start", 38.4225, 27.1420, "İzmir", "35XYZ987")
	offer := fmt.Sprintf(`.offer-card[data-request-id=%s]`, jsString(req.ID))
	app.until(fmt.Sprintf(`!!document.querySelector(%s)`, jsString(offer)), 20*time.Second)
	left := func() int {
		n, err := strconv.Atoi(eval[string](app, `document.querySelector('.countdown').dataset.left`))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	start := left()
	if start < 5 || start > 30 {
		t.Errorf("offer countdown starts at %d s, want up to the 30 s offer timeout", start)
	}
	app.until(fmt.Sprintf(`+document.querySelector('.countdown').dataset.left < %d`, start), 5*time.Second)
	app.shot("driver-offer")
	app.click(offer + ` [data-action=accept]`)
	job := fmt.Sprintf(`document.querySelector('.job-card[data-request-id=%s]')?.dataset.status`, jsString(req.ID))
	app.until(job+` === 'assigned'`, 10*time.Second)
	onBoard := func(column string) {
		t.Helper()
		board.until(fmt.Sprintf(`!!document.querySelector('[data-column=%s] [data-request-id=%s]')`, column, jsString(req.ID)), 10*time.Second)
	}
	onBoard("assigned")

	for _, step := range []string{"en_route", "arrived", "in_service"} {
		app.click(fmt.Sprintf(`[data-action=progress][data-next=%s]`, step))
		app.until(job+` === `+jsString(step), 10*time.Second)
		onBoard(step)
		if step == "en_route" {
			app.shot("driver-job")
		}
	}
	app.click(`[data-action=progress][data-next=completed]`)
	app.until(`!document.querySelector('.job-card') && document.querySelector('.driver-note').textContent.includes('completed')`, 10*time.Second)
	onBoard("done")
	board.until(fmt.Sprintf(`document.querySelector('[data-column=done] [data-request-id=%s]').dataset.status === 'completed'`, jsString(req.ID)), 10*time.Second)

	var done request
	h.api(t, customer, "GET", "/v1/requests/"+req.ID, nil, 200, &done)
	if done.Status != "completed" || done.Assignment == nil || done.Assignment.VehiclePlate != "35TOW07" {
		t.Errorf("the request ended %+v", done)
	}
	// Free again, the driver waits for the next job.
	app.until(`!!document.querySelector('.waiting')`, 10*time.Second)
}
