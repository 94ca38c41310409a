package e2e_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestPanelShowsAssignRefusal: the operator picks a candidate who goes
// offline before the click; the server refuses the manual assignment
// (422 on driver_id: "is offline") and the panel says so by the driver
// picker; the request stays unassigned. Konya.
func TestPanelShowsAssignRefusal(t *testing.T) {
	h.need(t)
	opsUser, opsPass := h.user(t, "operator", "ops")
	custUser, custPass := h.user(t, "customer", "fatma")
	drvUser, drvPass := h.user(t, "driver", "hasan", "--name", "Hasan Yıldız", "--vehicle-plate", "42TOW01", "--capabilities", "tow")
	customer, ops, driver := h.login(t, custUser, custPass), h.login(t, opsUser, opsPass), h.login(t, drvUser, drvPass)
	var me struct {
		UserID string `json:"user_id"`
	}
	h.api(t, driver, "GET", "/v1/me", nil, 200, &me)
	// 3 km away: outside dispatch's first round, a candidate all the same.
	h.driverAt(t, driver, 37.8950, 32.5100)
	req := h.newRequest(t, customer, "tow", 37.8710, 32.4850, "Konya", "42ABC001")

	panel := h.tab(t, "panel")
	panel.expectErrors(`status of 422`)
	panel.run(chromedp.Navigate(h.base + "/#board&access_token=" + ops))
	card := fmt.Sprintf(`.board [data-request-id=%s]`, jsString(req.ID))
	panel.until(fmt.Sprintf(`!!document.querySelector(%s)`, jsString(card)), 10*time.Second)
	panel.click(card)
	cand := fmt.Sprintf(`.candidate-list li[data-driver-id=%s]`, jsString(me.UserID))
	panel.until(fmt.Sprintf(`!!document.querySelector(%s)`, jsString(cand)), 20*time.Second)

	h.api(t, driver, "PUT", "/v1/drivers/me/availability", map[string]string{"availability": "offline"}, 200, nil)
	panel.click(cand + ` button[data-action=assign]`)
	refusal := fmt.Sprintf(`document.querySelector('.candidates .field-error[data-driver-id=%s]')?.textContent`, jsString(me.UserID))
	panel.until(refusal+` === 'Hasan Yıldız is offline'`, 10*time.Second)
	if msg := eval[string](panel, `document.querySelector('.drawer .msg-error')?.textContent || ''`); msg != "Assign Hasan Yıldız: driver_id is offline" {
		t.Errorf("drawer message %q", msg)
	}
	panel.shot("assign-refused")
	var after request
	h.api(t, ops, "GET", "/v1/requests/"+req.ID, nil, 200, &after)
	if after.Assignment != nil {
		t.Errorf("the refused assignment assigned %+v", after.Assignment)
	}
}

// TestDriverAppShowsRefusals: the driver app says why the server refused
// an accept. Refused for real: the driver went offline from another
// device while the app held the offer (409 offer-taken, withdrawn). The
// server answers 409 driver-offline only when going offline races the
// accept inside the server (going offline withdraws the offers before
// it answers), so that answer is the server's document served by a stub
// of the page's fetch; the app shows it and shows the driver offline.
// Antalya.
func TestDriverAppShowsRefusals(t *testing.T) {
	h.need(t)
	drvUser, drvPass := h.user(t, "driver", "emre", "--name", "Emre Aydın", "--vehicle-plate", "07TOW01", "--capabilities", "jump_start")
	custUser, custPass := h.user(t, "customer", "elif")
	customer := h.login(t, custUser, custPass)
	otherDevice := h.login(t, drvUser, drvPass)

	app := h.tab(t, "driver app")
	app.expectErrors(`status of 409`)
	app.run(chromedp.EmulateViewport(420, 860), chromedp.Navigate(h.base+"/driver?sim=1&at=36.8900,30.7000"))
	app.until(`!!document.querySelector('form.login-card')`, 10*time.Second)
	app.run(
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), drvUser),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), drvPass),
		chromedp.Click(chromedp.CSS(`form.login-card button[type=submit]`)),
	)
	app.until(`!!document.querySelector('.pill') && !!document.querySelector('.driver-map.leaflet-container')`, 10*time.Second)
	app.click(`[data-action=toggle-online]`)
	app.until(`document.querySelector('.pill')?.dataset.online === 'true'`, 10*time.Second)

	// The app holds its accept (and stops hearing of offers) until the
	// test lets it go: the driver goes offline elsewhere meanwhile.
	eval[chromedp.Void](app, `(() => {
		const real = window.fetch;
		window.__heldAccept = new Promise((r) => { window.__releaseAccept = r; });
		window.__stub = null;
		window.fetch = async (url, opts) => {
			const u = String(url);
			if (u.includes('/accept')) {
				if (window.__stub) return new Response(JSON.stringify(window.__stub), { status: window.__stub.status, headers: { 'Content-Type': 'application/problem+json' } });
				await window.__heldAccept;
			}
			return real(url, opts);
		};
	})()`)
	req := h.newRequest(t, customer, "jump_start", 36.8920, 30.7020, "Antalya", "07XYZ001")
	offer := fmt.Sprintf(`.offer-card[data-request-id=%s]`, jsString(req.ID))
	app.until(fmt.Sprintf(`!!document.querySelector(%s)`, jsString(offer)), 20*time.Second)
	app.click(offer + ` [data-action=accept]`)
	h.api(t, otherDevice, "PUT", "/v1/drivers/me/availability", map[string]string{"availability": "offline"}, 200, nil)
	eval[chromedp.Void](app, `window.__releaseAccept()`)
	app.until(`document.querySelector('.driver-note')?.dataset.kind === 'error' && document.querySelector('.driver-note').textContent.startsWith('The offer is no longer open: ')`, 10*time.Second)
	t.Logf("offer-taken: %s", eval[string](app, `document.querySelector('.driver-note').textContent`))

	// Online again (the app did not hear of the other device: it goes
	// offline first), a second offer; this accept is answered
	// driver-offline.
	app.click(`[data-action=toggle-online]`)
	app.until(`document.querySelector('.pill')?.dataset.online === 'false'`, 10*time.Second)
	app.click(`[data-action=toggle-online]`)
	app.until(`document.querySelector('.pill')?.dataset.online === 'true'`, 10*time.Second)
	second := h.newRequest(t, customer, "jump_start", 36.8880, 30.6980, "Antalya", "07XYZ002")
	offer = fmt.Sprintf(`.offer-card[data-request-id=%s]`, jsString(second.ID))
	app.until(fmt.Sprintf(`!!document.querySelector(%s)`, jsString(offer)), 20*time.Second)
	eval[chromedp.Void](app, `window.__stub = {type: 'https://yolda.dev/problems/driver-offline', title: 'Driver offline', status: 409, detail: 'The driver is offline; the offer is withdrawn.'}`)
	app.click(offer + ` [data-action=accept]`)
	app.until(`document.querySelector('.driver-note')?.textContent === 'You are offline, so the offer was withdrawn. Go online to take offers.'`, 10*time.Second)
	if !eval[bool](app, `document.querySelector('.pill').dataset.online === 'false' && !document.querySelector('.offer-card')`) {
		t.Error("after driver-offline the app still shows the driver online, or the offer")
	}
	app.shot("driver-refused")
}
