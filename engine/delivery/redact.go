package delivery

import (
	"context"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"unicode"
)

// Redacted replaces a secret in error texts.
const Redacted = "REDACTED"

// minSecretLen is the shortest string a Redactor removes: shorter values (a header such as
// "X-Debug: 1") are not tokens, and removing them would mangle every error text.
const minSecretLen = 6

// Redactor removes an output's configured secrets (tokens, passwords, header values, the path
// and query of secret URLs) from error texts. The engine runs every error of the output through
// it before the text is logged, kept for /healthz or written to the dead-letter file, wherever
// the text came from: a receiver echoing its path in a 404 body, an SDK error, a url.Error.
// The zero value and nil redact nothing.
type Redactor struct {
	r *strings.Replacer
}

// NewRedactor returns a Redactor of secrets: each is removed verbatim, and in its
// URL-escaped form, longest first. Secrets shorter than six characters are ignored.
func NewRedactor(secrets ...string) *Redactor {
	seen := map[string]bool{}
	var all []string
	add := func(s string) {
		if len(s) >= minSecretLen && !seen[s] {
			seen[s] = true
			all = append(all, s)
		}
	}
	for _, s := range secrets {
		add(s)
		add(url.PathEscape(s))
		add(url.QueryEscape(s))
	}
	if len(all) == 0 {
		return &Redactor{}
	}
	// strings.Replacer tries its old strings in argument order at each position: longest
	// first, so a whole URL wins over its path.
	sort.Slice(all, func(i, j int) bool {
		if len(all[i]) != len(all[j]) {
			return len(all[i]) > len(all[j])
		}
		return all[i] < all[j]
	})
	pairs := make([]string, 0, 2*len(all))
	for _, s := range all {
		if strings.HasPrefix(s, "/") {
			pairs = append(pairs, s, "/"+Redacted) // a URL path stays readable as one
		} else {
			pairs = append(pairs, s, Redacted)
		}
	}
	return &Redactor{r: strings.NewReplacer(pairs...)}
}

// Redact returns text without the secrets.
func (r *Redactor) Redact(text string) string {
	if r == nil || r.r == nil {
		return text
	}
	return r.r.Replace(text)
}

// SecretURLParts returns the parts of a URL that may hold a token, for NewRedactor: the
// password, the path, each path segment that looks like a token (it has a digit or is 12
// characters or longer), the query, and each query value. Scheme and host are not secret.
// A value that is not an absolute URL is returned whole.
func SecretURLParts(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return []string{raw}
	}
	var parts []string
	if pw, ok := u.User.Password(); ok {
		parts = append(parts, pw)
	}
	if p := u.EscapedPath(); len(p) > 1 {
		parts = append(parts, p, u.Path)
		for _, seg := range strings.Split(u.Path, "/") {
			if len(seg) >= 12 || strings.IndexFunc(seg, unicode.IsDigit) >= 0 {
				parts = append(parts, seg)
			}
		}
	}
	if u.RawQuery != "" {
		parts = append(parts, u.RawQuery)
		for _, vs := range u.Query() {
			parts = append(parts, vs...)
		}
	}
	return parts
}

// SecretHeaderParts returns a header value and its words ("Bearer TOKEN" gives the whole
// value and TOKEN), for NewRedactor: a receiver may echo the token alone.
func SecretHeaderParts(value string) []string {
	return append([]string{value}, strings.Fields(value)...)
}

// Handler wraps h so that the message and every string, error or stringer attribute of a
// record are redacted: for the loggers outputs log through.
func (r *Redactor) Handler(h slog.Handler) slog.Handler {
	if r == nil || r.r == nil {
		return h
	}
	return &redactHandler{next: h, r: r}
}

type redactHandler struct {
	next slog.Handler
	r    *Redactor
}

func (h *redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.Redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.Redact(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		out := make([]any, len(attrs))
		for i, g := range attrs {
			out[i] = h.attr(g)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, h.r.Redact(x.Error()))
		case interface{ String() string }:
			return slog.String(a.Key, h.r.Redact(x.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (h *redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = h.attr(a)
	}
	return &redactHandler{next: h.next.WithAttrs(out), r: h.r}
}

func (h *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{next: h.next.WithGroup(name), r: h.r}
}
