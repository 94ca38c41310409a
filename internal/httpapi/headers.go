package httpapi

import "net/http"

// The edge has two Content-Security-Policies (docs/security.md):
//
//   - apiCSP, on every answer: the API serves JSON, so the policy allows
//     nothing; a response opened in a browser runs no script, loads
//     nothing and cannot be framed.
//   - pageCSP, on the web apps' HTML pages only (internal/httpapi/web.go):
//     scripts, styles, images and data from this origin and nowhere else
//     (the apps ship their map library and basemap), no inline script or
//     style, no plugins, no <base>, forms post only here, and no framing.
//     connect-src 'self' covers the WebSocket of the same origin.
const (
	apiCSP  = "default-src 'none'; frame-ancestors 'none'"
	pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
		"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'; frame-ancestors 'none'"
)

// setSecurityHeaders marks an answer so that browsers neither guess its
// type (a JSON body holding HTML must not become a page), nor frame it, nor
// leak the URL to another site.
func setSecurityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", apiCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

// setPageHeaders replaces the API's policy with the pages' on an HTML
// page. The driver app shares the device's position; nothing may use the
// camera or the microphone. A page opened from elsewhere gets no handle on
// the opener.
func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Permissions-Policy", "geolocation=(self), camera=(), microphone=(), payment=(), usb=()")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}
