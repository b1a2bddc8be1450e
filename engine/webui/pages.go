package webui

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// assets are the UI's files: one HTML shell, a script and a style sheet, embedded so that
// `go install` and `make run` need no front-end build and the pages load nothing from another
// host.
//
//go:embed assets
var assets embed.FS

// csp allows only saker's own script, style and API: event content is attacker-controlled
// (a pod name, a command line), and the pages insert it as text, never as HTML; the policy
// is the second line of defence.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (h *Handler) pages() {
	sub, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(sub)
	index, _ := fs.ReadFile(sub, "index.html")
	shell := func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(index)
	}
	// Every page is the same shell; the script renders the page the path names.
	h.mux.HandleFunc("GET /ui/{$}", shell)
	h.mux.HandleFunc("GET /ui/events", shell)
	h.mux.HandleFunc("GET /ui/events/{uuid}", shell)
	h.mux.HandleFunc("GET /ui/outputs", shell)
	h.mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusFound) })
	h.mux.Handle("GET /ui/assets/", http.StripPrefix("/ui/assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".html") || r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		secure(w)
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})))
}

func secure(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("X-Frame-Options", "DENY")
}
