// Package web holds Yolda's browser apps, embedded in the binary: the
// operations panel (/), the driver app (/driver) and the customer's
// tracking page (/track/{id}), with their scripts, styles, the vendored
// map library and the offline basemap under /assets/. The apps are plain
// ES modules, served as written (docs/web.md says why); build/ refreshes
// the third-party files and the basemap, whose output is committed, so no
// build step runs when Yolda is built.
//
// The package only finds files for paths; serving them, with the pages'
// security headers, is the edge's job (internal/httpapi).
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// File is one servable file, read once at start.
type File struct {
	// Name is the file's path under static/.
	Name        string
	ContentType string
	Body        []byte
	// Gzip is Body compressed, when that saves something; else nil.
	Gzip []byte
	// ETag is a strong validator of Body.
	ETag string
	// Page is an HTML document (it gets the pages' CSP); assets are not.
	Page bool
}

// Site maps URL paths to files.
type Site struct {
	assets map[string]*File // by URL path, /assets/...
	panel  *File
	driver *File
	track  *File
}

// New reads the embedded files.
func New() (*Site, error) {
	s := &Site{assets: map[string]*File{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := load(p)
		if err != nil {
			return err
		}
		switch strings.TrimPrefix(p, "static/") {
		case "index.html":
			s.panel = f
		case "driver.html":
			s.driver = f
		case "track.html":
			s.track = f
		default:
			if rest, ok := strings.CutPrefix(p, "static/assets/"); ok {
				s.assets["/assets/"+rest] = f
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web files: %w", err)
	}
	if s.panel == nil || s.driver == nil || s.track == nil {
		return nil, fmt.Errorf("web files: a page is missing")
	}
	return s, nil
}

func load(p string) (*File, error) {
	body, err := static.ReadFile(p)
	if err != nil {
		return nil, err
	}
	ct := mime.TypeByExtension(path.Ext(p))
	switch path.Ext(p) { // not every system's mime table knows these
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".json":
		ct = "application/json"
	case ".css":
		ct = "text/css; charset=utf-8"
	case ".html":
		ct = "text/html; charset=utf-8"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	sum := sha256.Sum256(body)
	f := &File{Name: strings.TrimPrefix(p, "static/"), ContentType: ct, Body: body,
		ETag: `"` + hex.EncodeToString(sum[:12]) + `"`, Page: path.Ext(p) == ".html"}
	if len(body) > 1024 && !strings.HasPrefix(ct, "image/png") {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if b.Len() < len(body)*9/10 {
			f.Gzip = b.Bytes()
		}
	}
	return f, nil
}

// Lookup returns the file for a URL path: a page (/, /driver,
// /track/{id}) or an asset.
func (s *Site) Lookup(urlPath string) (*File, bool) {
	switch {
	case urlPath == "/":
		return s.panel, true
	case urlPath == "/driver":
		return s.driver, true
	case strings.HasPrefix(urlPath, "/track/") && validRequestID(strings.TrimPrefix(urlPath, "/track/")):
		return s.track, true
	}
	f, ok := s.assets[urlPath]
	return f, ok
}

// Size is the embedded bytes, uncompressed (for the docs and a test).
func (s *Site) Size() int {
	n := len(s.panel.Body) + len(s.driver.Body) + len(s.track.Body)
	for _, f := range s.assets {
		n += len(f.Body)
	}
	return n
}

// validRequestID accepts what could be a request id (req_ + base32), so
// that /track/anything is not a page.
func validRequestID(id string) bool {
	rest, ok := strings.CutPrefix(id, "req_")
	if !ok || len(rest) == 0 || len(rest) > 60 {
		return false
	}
	for _, c := range rest {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}
