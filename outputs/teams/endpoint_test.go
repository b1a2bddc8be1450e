package teams

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sync"
)

// endpoint is a strict stand-in for Teams (no real Teams server runs locally): it checks a
// MessageCard or an Adaptive Card message against their schemas and answers as Teams does,
// 200 "1" for a connector card, 202 and no body for a Workflows message. A body that fails
// the schema gets 400 and is recorded as a problem.
type endpoint struct {
	mu       sync.Mutex
	cards    []map[string]any
	problems []string
	answer   func(w http.ResponseWriter) bool // optional override, true when it answered
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.answer != nil && e.answer(w) {
		return
	}
	body, _ := io.ReadAll(r.Body)
	var card map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	err := dec.Decode(&card)
	problem := ""
	switch {
	case r.Method != http.MethodPost:
		problem = "method " + r.Method
	case r.Header.Get("Content-Type") != "application/json; charset=utf-8" && r.Header.Get("Content-Type") != "application/json":
		problem = "content type " + r.Header.Get("Content-Type")
	case err != nil:
		problem = "not a JSON object: " + err.Error()
	case card["@type"] != nil:
		problem = checkMessageCard(card)
	default:
		problem = checkAdaptiveMessage(card)
	}
	if problem != "" {
		e.problems = append(e.problems, problem)
		http.Error(w, "Bad payload received by generic incoming webhook: "+problem, http.StatusBadRequest)
		return
	}
	e.cards = append(e.cards, card)
	if card["@type"] != nil {
		_, _ = io.WriteString(w, "1")
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (e *endpoint) snapshot() ([]map[string]any, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]map[string]any(nil), e.cards...), append([]string(nil), e.problems...)
}

var hex6 = regexp.MustCompile(`^#?[0-9a-fA-F]{6}$`)

// only reports the first key of m outside allowed.
func only(m map[string]any, allowed ...string) string {
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	for k := range m {
		if !ok[k] {
			return "unexpected key " + k
		}
	}
	return ""
}

func str(m map[string]any, key string, required bool) (string, string) {
	v, has := m[key]
	if !has {
		if required {
			return "", "missing " + key
		}
		return "", ""
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Sprintf("%s is %T, not a string", key, v)
	}
	return s, ""
}

// checkMessageCard validates the legacy connector card (MessageCard reference): @type and
// @context, a summary or text, a hex themeColor, sections of known keys, facts of strings.
func checkMessageCard(c map[string]any) string {
	if p := only(c, "@type", "@context", "summary", "title", "text", "themeColor", "sections"); p != "" {
		return p
	}
	if c["@type"] != "MessageCard" {
		return fmt.Sprintf("@type %v", c["@type"])
	}
	if ctx, p := str(c, "@context", true); p != "" || (ctx != "https://schema.org/extensions" && ctx != "http://schema.org/extensions") {
		return "bad @context " + ctx + p
	}
	summary, p := str(c, "summary", false)
	if p != "" {
		return p
	}
	text, p := str(c, "text", false)
	if p != "" || (summary == "" && text == "") {
		return "summary or text required" + p
	}
	if color, p := str(c, "themeColor", false); p != "" || (color != "" && !hex6.MatchString(color)) {
		return "themeColor " + color + p
	}
	sections, ok := c["sections"].([]any)
	if !ok || len(sections) == 0 {
		return "sections must be a non-empty array"
	}
	for _, s := range sections {
		sec, ok := s.(map[string]any)
		if !ok {
			return "section is not an object"
		}
		if p := only(sec, "activityTitle", "activitySubtitle", "activityImage", "activityText", "text", "facts", "markdown", "title"); p != "" {
			return p
		}
		for _, k := range []string{"activityTitle", "activitySubtitle", "activityImage", "text"} {
			if _, p := str(sec, k, false); p != "" {
				return p
			}
		}
		if f, has := sec["facts"]; has {
			facts, ok := f.([]any)
			if !ok {
				return "facts is not an array"
			}
			for _, f := range facts {
				fm, ok := f.(map[string]any)
				if !ok || only(fm, "name", "value") != "" {
					return fmt.Sprintf("fact %v", f)
				}
				if _, p := str(fm, "name", true); p != "" {
					return "fact " + p
				}
				if _, p := str(fm, "value", true); p != "" {
					return "fact " + p
				}
			}
		}
	}
	return ""
}

// checkAdaptiveMessage validates what a Teams Workflows webhook takes: a message whose
// attachments are Adaptive Cards (contentType, type AdaptiveCard, version 1.4) with a body
// of known elements.
func checkAdaptiveMessage(m map[string]any) string {
	if m["type"] != "message" {
		return fmt.Sprintf("type %v, want message", m["type"])
	}
	atts, ok := m["attachments"].([]any)
	if !ok || len(atts) == 0 {
		return "attachments must be a non-empty array"
	}
	for _, a := range atts {
		att, ok := a.(map[string]any)
		if !ok {
			return "attachment is not an object"
		}
		if att["contentType"] != AdaptiveContentType {
			return fmt.Sprintf("contentType %v", att["contentType"])
		}
		card, ok := att["content"].(map[string]any)
		if !ok {
			return "content is not an object"
		}
		if card["type"] != "AdaptiveCard" || card["version"] != "1.4" {
			return fmt.Sprintf("content type %v version %v", card["type"], card["version"])
		}
		if _, p := str(card, "$schema", false); p != "" {
			return p
		}
		body, ok := card["body"].([]any)
		if !ok || len(body) == 0 {
			return "card body must be a non-empty array"
		}
		for _, el := range body {
			if p := checkElement(el); p != "" {
				return p
			}
		}
	}
	return ""
}

var containerStyleNames = map[any]bool{nil: true, "default": true, "emphasis": true, "good": true, "attention": true, "warning": true, "accent": true}

func checkElement(v any) string {
	el, ok := v.(map[string]any)
	if !ok {
		return "element is not an object"
	}
	list := func(key string) ([]any, string) {
		l, ok := el[key].([]any)
		if !ok || len(l) == 0 {
			return nil, fmt.Sprintf("%v.%s must be a non-empty array", el["type"], key)
		}
		return l, ""
	}
	switch el["type"] {
	case "TextBlock":
		if s, p := str(el, "text", true); p != "" || s == "" {
			return "TextBlock text " + p
		}
	case "Image":
		if s, p := str(el, "url", true); p != "" || s == "" {
			return "Image url " + p
		}
	case "FactSet":
		facts, p := list("facts")
		if p != "" {
			return p
		}
		for _, f := range facts {
			fm, ok := f.(map[string]any)
			if !ok || only(fm, "title", "value") != "" {
				return fmt.Sprintf("fact %v", f)
			}
			if _, p := str(fm, "title", true); p != "" {
				return "fact " + p
			}
			if _, p := str(fm, "value", true); p != "" {
				return "fact " + p
			}
		}
	case "Container", "Column":
		if !containerStyleNames[el["style"]] {
			return fmt.Sprintf("style %v", el["style"])
		}
		items, p := list("items")
		if p != "" {
			return p
		}
		for _, it := range items {
			if p := checkElement(it); p != "" {
				return p
			}
		}
	case "ColumnSet":
		cols, p := list("columns")
		if p != "" {
			return p
		}
		for _, c := range cols {
			if cm, ok := c.(map[string]any); !ok || cm["type"] != "Column" {
				return "ColumnSet column is not a Column"
			}
			if p := checkElement(c); p != "" {
				return p
			}
		}
	default:
		return fmt.Sprintf("unknown element type %v", el["type"])
	}
	return ""
}
