package e2e_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/yolda/yolda/internal/auth"
)

// TestTrackingLinkAndPanelAccess: a tracking link reads its request and
// no other, an expired link is refused, the customer cancels from the
// page; a customer's token does not open the panel. Bursa.
func TestTrackingLinkAndPanelAccess(t *testing.T) {
	h.need(t)
	custUser, custPass := h.user(t, "customer", "can")
	customer := h.login(t, custUser, custPass)
	a := h.newRequest(t, customer, "flat_tire", 40.1950, 29.0600, "Bursa", "16AAA001")
	b := h.newRequest(t, customer, "flat_tire", 40.1990, 29.0700, "Bursa", "16AAA002")
	var link struct {
		URL   string `json:"url"`
		Token string `json:"token"`
	}
	h.api(t, customer, "POST", "/v1/requests/"+a.ID+"/tracking-link", nil, 201, &link)

	page := h.tab(t, "tracking page")
	page.run(chromedp.EmulateViewport(420, 860), chromedp.Navigate(h.base+link.URL))
	page.until(`!!document.querySelector('h1[data-status]') && !!document.querySelector('.leaflet-container')`, 10*time.Second)

	// The same link on another request of the same customer: refused, as
	// a request that does not exist.
	other := h.tab(t, "tracking page, other request")
	other.expectErrors(`status of 404`)
	other.run(chromedp.Navigate(h.base + "/track/" + b.ID + "#t=" + link.Token))
	other.until(`document.querySelector('[data-refused]')?.dataset.refused === '404'`, 10*time.Second)

	// An expired link.
	past, err := auth.NewTrackingLinks(h.secret, 2*time.Hour, func() time.Time { return time.Now().Add(-3 * time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := past.Issue(a.ID, "usr_whoever")
	if err != nil {
		t.Fatal(err)
	}
	old := h.tab(t, "tracking page, expired link")
	old.expectErrors(`status of 401`)
	old.run(chromedp.EmulateViewport(420, 860), chromedp.Navigate(h.base+"/track/"+a.ID+"#t="+expired))
	old.until(`document.querySelector('[data-refused]')?.dataset.refused === '401'`, 10*time.Second)
	old.shot("tracking-expired")

	// The customer cancels from the page; the request is cancelled, the
	// other one is not.
	page.click(`[data-action=cancel]`)
	page.click(`[data-action=confirm-cancel]`)
	page.until(`document.querySelector('h1')?.dataset.status === 'cancelled'`, 10*time.Second)
	var got request
	h.api(t, customer, "GET", "/v1/requests/"+a.ID, nil, 200, &got)
	if got.Status != "cancelled" {
		t.Errorf("after the page's cancel the request is %s", got.Status)
	}
	h.api(t, customer, "GET", "/v1/requests/"+b.ID, nil, 200, &got)
	if got.Status == "cancelled" {
		t.Error("the other request was cancelled too")
	}

	// A customer's token does not open the panel: not from a link...
	panel := h.tab(t, "panel as a customer")
	panel.run(chromedp.Navigate(h.base + "/#access_token=" + customer))
	panel.until(`document.querySelector('.login-error')?.textContent.includes('customer account cannot use this app')`, 10*time.Second)
	if eval[bool](panel, `!!document.querySelector('.board') || sessionStorage.getItem('yolda.panel') !== null`) {
		t.Error("the panel opened, or kept the session, for a customer's token")
	}
	// ...nor from the sign-in form.
	panel.run(
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), custUser),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), custPass),
		chromedp.Click(chromedp.CSS(`form.login-card button[type=submit]`)),
	)
	panel.until(`document.querySelector('.login-error')?.textContent.includes('customer account cannot use this app') && !document.querySelector('.board')`, 10*time.Second)
	if eval[bool](panel, `sessionStorage.getItem('yolda.panel') !== null`) {
		t.Error("the panel kept a customer's session")
	}
	// The API agrees: staff routes refuse the customer's token.
	h.api(t, customer, "GET", "/v1/drivers", nil, 403, nil)
	h.api(t, customer, "GET", "/v1/insurers", nil, 403, nil)
	// The driver app refuses it too.
	drv := h.tab(t, "driver app as a customer")
	drv.run(chromedp.Navigate(h.base + "/driver"))
	drv.until(`!!document.querySelector('form.login-card')`, 10*time.Second)
	drv.run(
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), custUser),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), custPass),
		chromedp.Click(chromedp.CSS(`form.login-card button[type=submit]`)),
	)
	drv.until(`document.querySelector('.login-error')?.textContent.includes('customer account cannot use this app')`, 10*time.Second)
}
