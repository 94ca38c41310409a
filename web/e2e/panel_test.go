package e2e_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestOperatorPanel: the operator signs in, sees a request made through
// the API on the board within a second, watches a driver move on the
// map, gets the alert when nobody takes the request, assigns it by hand,
// and the customer's tracking page shows the assignment. Ankara.
func TestOperatorPanel(t *testing.T) {
	h.need(t)
	opsUser, opsPass := h.user(t, "operator", "ops")
	custUser, custPass := h.user(t, "customer", "ayse")
	drvUser, drvPass := h.user(t, "driver", "ali", "--name", "Ali Kaya", "--vehicle-plate", "06TOW42", "--capabilities", "tow,jump_start")
	customer := h.login(t, custUser, custPass)
	driver := h.login(t, drvUser, drvPass)
	var me struct {
		UserID string `json:"user_id"`
	}
	h.api(t, driver, "GET", "/v1/me", nil, 200, &me)
	// 3 km from the request: outside dispatch's 1 km round, so nobody is
	// offered the job and it ends unfulfilled, for the operator.
	h.driverAt(t, driver, 39.9500, 32.8800)

	panel := h.tab(t, "panel")
	panel.run(chromedp.Navigate(h.base + "/"))
	panel.until(`!!document.querySelector('form.login-card input[name=username]')`, 10*time.Second)
	panel.shot("login")
	panel.run(
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), opsUser),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), opsPass),
		chromedp.Click(chromedp.CSS(`form.login-card button[type=submit]`)),
	)
	// Live over the WebSocket (the contract's /v1/ws), not by polling.
	panel.until(`!!document.querySelector('.board [data-column=dispatching]') && document.querySelector('.link-state').dataset.state === 'live'`, 10*time.Second)
	if !eval[bool](panel, `!!sessionStorage.getItem('yolda.panel') && document.cookie === ''`) {
		t.Error("the session is not in sessionStorage, or a cookie was set")
	}

	// A request made through the API appears on the board within a second.
	req := h.newRequest(t, customer, "tow", 39.9250, 32.8500, "Ankara", "06ABC123")
	took := panel.until(fmt.Sprintf(`!!document.querySelector('.board [data-request-id=%s]')`, jsString(req.ID)), 5*time.Second)
	if took > time.Second {
		t.Errorf("the request took %s to appear on the board, want under a second", took)
	}
	t.Logf("request on the board %s after its 202", took)

	// The fleet map: the driver, and the driver moving.
	panel.click(`[data-view=map]`)
	marker := fmt.Sprintf(`document.querySelector('path.drv[data-driver-id=%s]')`, jsString(me.UserID))
	panel.until(marker+` !== null && `+marker+`.dataset.lat === '39.95'`, 10*time.Second)
	panel.until(fmt.Sprintf(`!!document.querySelector('.req-pin[data-request-id=%s]')`, jsString(req.ID)), 10*time.Second)
	before := eval[string](panel, marker+`.getAttribute('d')`)
	// Far enough to move the marker by pixels at the country's zoom.
	h.moveDriver(t, driver, 39.8000, 32.7000)
	panel.until(marker+`.dataset.lat === '39.8'`, 5*time.Second)
	after := eval[string](panel, marker+`.getAttribute('d')`)
	if before == after {
		t.Errorf("the driver's marker did not move on the map: %s", after)
	}
	if !eval[bool](panel, marker+`.classList.contains('drv-free')`) {
		t.Error("a free driver is not drawn as free")
	}

	// Nobody takes it: the alert comes without a reload.
	panel.until(fmt.Sprintf(`!!document.querySelector('.toast[data-kind=unfulfilled][data-request-id=%s]')`, jsString(req.ID)), 30*time.Second)
	panel.shot("fleet-map")

	// Assign by hand from the map: the request's pin, its candidates.
	eval[chromedp.Void](panel, fmt.Sprintf(`document.querySelector('.req-pin[data-request-id=%s]').click()`, jsString(req.ID)))
	panel.until(`document.querySelector('.drawer h2')?.dataset.status === 'unfulfilled'`, 10*time.Second)
	cand := fmt.Sprintf(`.candidate-list li[data-driver-id=%s]`, jsString(me.UserID))
	panel.until(fmt.Sprintf(`!!document.querySelector(%s)`, jsString(cand)), 10*time.Second)
	eta := eval[string](panel, fmt.Sprintf(`document.querySelector(%s + ' .cand-eta').textContent`, jsString(cand)))
	if eta == "" || eta[0] < '0' || eta[0] > '9' {
		t.Errorf("candidate's ETA %q", eta)
	}
	panel.shot("request-details")
	panel.click(cand + ` button[data-action=assign]`)
	panel.until(`document.querySelector('.drawer h2')?.dataset.status === 'assigned'`, 10*time.Second)
	var assigned request
	h.api(t, customer, "GET", "/v1/requests/"+req.ID, nil, 200, &assigned)
	if assigned.Status != "assigned" || assigned.Assignment == nil || assigned.Assignment.DriverID != me.UserID {
		t.Fatalf("after the manual assignment the request is %+v", assigned)
	}
	panel.click(`[data-view=board]`)
	panel.until(fmt.Sprintf(`!!document.querySelector('[data-column=assigned] [data-request-id=%s]')`, jsString(req.ID)), 5*time.Second)
	panel.shot("board")

	// The customer's tracking page, from the link the operator sends.
	panel.click(`.drawer [data-action=tracking-link]`)
	panel.until(`!!document.querySelector('.drawer .link a')`, 10*time.Second)
	link := eval[string](panel, `document.querySelector('.drawer .link a').href`)
	track := h.tab(t, "tracking page")
	track.run(chromedp.EmulateViewport(420, 860), chromedp.Navigate(link))
	track.until(`document.querySelector('h1')?.dataset.status === 'assigned' && !!document.querySelector('.driver-card[data-plate="06TOW42"]')`, 10*time.Second)
	if name := eval[string](track, `document.querySelector('.driver-name').textContent`); name != "Ali Kaya" {
		t.Errorf("tracking page shows driver %q, want Ali Kaya", name)
	}
	// The driver moves; the customer sees it.
	h.moveDriver(t, driver, 39.9300, 32.8600)
	track.until(`document.querySelector('path.drv')?.dataset.lat === '39.93'`, 10*time.Second)
	track.shot("tracking")

	// The other screens, for the record.
	panel.click(`[data-view=insurers]`)
	panel.until(`!!document.querySelector('.insurer[data-insurer=anadolu] .breaker')`, 10*time.Second)
	if breaker := eval[string](panel, `document.querySelector('.insurer[data-insurer=anadolu] .breaker').textContent`); breaker != "closed" {
		t.Errorf("anadolu's breaker %q, want closed", breaker)
	}
	// One process runs every role: the board has its own report.
	panel.until(`document.querySelector('.insurers-source')?.dataset.source === 'board' && document.querySelector('.insurers-source').textContent.startsWith('Merged from 1 insurance process,')`, 10*time.Second)
	panel.shot("insurers")
	panel.click(`[data-view=reports]`)
	panel.until(`!!document.querySelector('.reports .report, .reports .empty')`, 10*time.Second)
	panel.shot("reports")
	panel.click(`[data-view=dead]`)
	panel.until(`!!document.querySelector('.dead table, .dead .empty')`, 10*time.Second)
	panel.shot("dead-letters")
	t.Logf("%d alert(s) on screen", eval[int](panel, `document.querySelectorAll('.toast').length`))
}
