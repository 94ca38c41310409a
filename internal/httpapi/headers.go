package httpapi

import "net/http"

// apiCSP is the Content-Security-Policy of every API answer. The API
// serves JSON only, so the policy allows nothing: a response opened in a
// browser runs no script, loads nothing and cannot be framed. The web apps
// to come serve HTML under their own policy, which keeps
// frame-ancestors 'none' (docs/security.md).
const apiCSP = "default-src 'none'; frame-ancestors 'none'"

// setSecurityHeaders marks an answer so that browsers neither guess its
// type (a JSON body holding HTML must not become a page), nor frame it, nor
// leak the URL to another site.
func setSecurityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", apiCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}
