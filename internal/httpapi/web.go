package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/yolda/yolda/web"
)

// Site finds the web apps' files (web.Site).
type Site interface {
	Lookup(urlPath string) (*web.File, bool)
}

// webRoute is the metrics label of the pages and their assets.
const webRoute = "/ (web)"

// serveWeb answers GET and HEAD of a page or an asset of the web apps;
// it reports false for any other path, which the caller answers (404).
// Pages are public: they hold no data, and every call they make carries
// the token the user logged in with (kept in sessionStorage, never in a
// cookie, so no request is authenticated by the browser alone and there
// is nothing for CSRF to ride on).
func (s *Server) serveWeb(w http.ResponseWriter, r *http.Request) bool {
	if s.web == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	f, ok := s.web.Lookup(r.URL.Path)
	if !ok {
		return false
	}
	h := w.Header()
	if f.Page {
		setPageHeaders(h)
	}
	h.Set("Content-Type", f.ContentType)
	h.Set("ETag", f.ETag)
	// Revalidate every time: the files change with the binary, and an
	// unchanged one costs a 304.
	h.Set("Cache-Control", "no-cache")
	h.Add("Vary", "Accept-Encoding")
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, f.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	body := f.Body
	if f.Gzip != nil && acceptsGzip(r) {
		body = f.Gzip
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
	return true
}

func acceptsGzip(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.TrimSpace(q) != "q=0" {
			return true
		}
	}
	return false
}
