package httpin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
)

// Credentials are what a client must present on the listener's protected paths: a bearer
// token, HTTP basic credentials, or either. The zero value leaves every path open.
type Credentials struct {
	Token         string
	BasicUser     string
	BasicPassword string
	// ProtectAll also protects /healthz, /ping and /metrics, which probes and Prometheus
	// otherwise reach without credentials.
	ProtectAll bool
}

// Enabled reports whether any credential is configured.
func (c Credentials) Enabled() bool { return c.Token != "" || c.BasicUser != "" }

// openPaths are served without credentials unless ProtectAll: liveness probes and
// Prometheus scrapes rarely carry them, and they reveal no event.
var openPaths = map[string]bool{"/healthz": true, "/ping": true, "/metrics": true}

// authenticator checks the Authorization header. Expected values are hashed once so that
// every comparison is constant-time and of equal length whatever the client sends.
type authenticator struct {
	enabled    bool
	protectAll bool
	// own are the paths whose handlers check credentials themselves (the web UI, which may
	// have its own): a pattern ending in / is a prefix.
	own       []string
	bearer    *[sha256.Size]byte
	basic     *[sha256.Size]byte
	challenge string
}

func newAuthenticator(c Credentials) *authenticator {
	a := &authenticator{enabled: c.Enabled(), protectAll: c.ProtectAll}
	var challenges []string
	if c.Token != "" {
		h := sha256.Sum256([]byte(c.Token))
		a.bearer = &h
		challenges = append(challenges, `Bearer realm="saker"`)
	}
	if c.BasicUser != "" {
		h := sha256.Sum256([]byte(c.BasicUser + ":" + c.BasicPassword))
		a.basic = &h
		challenges = append(challenges, `Basic realm="saker"`)
	}
	a.challenge = strings.Join(challenges, ", ")
	return a
}

// protects reports whether path needs credentials.
func (a *authenticator) protects(path string) bool {
	if !a.enabled {
		return false
	}
	for _, p := range a.own {
		if path == p || strings.HasSuffix(p, "/") && strings.HasPrefix(path, p) {
			return false
		}
	}
	return a.protectAll || !openPaths[path]
}

// allows reports whether the Authorization header value carries valid credentials.
func (a *authenticator) allows(header string) bool {
	scheme, rest, _ := strings.Cut(header, " ")
	rest = strings.TrimLeft(rest, " ")
	switch {
	case a.bearer != nil && strings.EqualFold(scheme, "Bearer"):
		got := sha256.Sum256([]byte(rest))
		return subtle.ConstantTimeCompare(got[:], a.bearer[:]) == 1
	case a.basic != nil && strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return false
		}
		got := sha256.Sum256(raw)
		return subtle.ConstantTimeCompare(got[:], a.basic[:]) == 1
	}
	return false
}

// unauthorized is the 401 answer, counted as
// falcosecurity_falcosidekick_inputs_total{source,status="unauthorized"}. Nothing of the
// request is logged: its body may be anything, and its header a mistyped secret.
func (s *Server) unauthorized(rt *route) answer {
	rt.rejected.inc("unauthorized", "")
	a := errorAnswer(http.StatusUnauthorized, "missing or invalid credentials: send Authorization: Bearer <auth.token> or HTTP basic credentials")
	a.challenge = s.auth.challenge
	return a
}

// Protect returns h behind c's credentials: a request without them gets 401 with the
// challenge. With no credential configured it returns h. It is for handlers mounted with
// HandleSelfAuthenticated or on another listener (the web UI, which may have its own).
func Protect(c Credentials, h http.Handler) http.Handler {
	if !c.Enabled() {
		return h
	}
	a := newAuthenticator(c)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.allows(r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", a.challenge)
			WriteError(w, http.StatusUnauthorized, "missing or invalid credentials: send Authorization: Bearer <token> or HTTP basic credentials")
			return
		}
		h.ServeHTTP(w, r)
	})
}
