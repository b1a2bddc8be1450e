// Package event defines the alert that flows through saker: the Falco event model shared by
// the HTTP input, the audit rule engine, enrichment, routing and every output.
package event

import (
	"fmt"
	"strings"
)

// Priority is a Falco priority. The zero value is Default, which sorts below Debug so that a
// missing minimumpriority lets everything through.
type Priority int

// The Falco priorities from least to most severe.
const (
	Default Priority = iota
	Debug
	Informational
	Notice
	Warning
	Error
	Critical
	Alert
	Emergency
)

var priorityNames = [...]string{"", "Debug", "Informational", "Notice", "Warning", "Error", "Critical", "Alert", "Emergency"}

// PriorityNames lists the accepted priority names, least severe first, for error messages.
const PriorityNames = "emergency, alert, critical, error, warning, notice, informational (or info), debug"

// String returns Falco's spelling of the priority ("Warning", "Informational").
func (p Priority) String() string {
	if p < 0 || int(p) >= len(priorityNames) {
		return ""
	}
	return priorityNames[p]
}

// ParsePriority reads a priority name case-insensitively, accepting "info" and "warn" as
// falcosidekick does. The empty string is Default.
func ParsePriority(s string) (Priority, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return Default, nil
	case "emergency":
		return Emergency, nil
	case "alert":
		return Alert, nil
	case "critical":
		return Critical, nil
	case "error":
		return Error, nil
	case "warning", "warn":
		return Warning, nil
	case "notice":
		return Notice, nil
	case "informational", "info":
		return Informational, nil
	case "debug":
		return Debug, nil
	}
	return Default, fmt.Errorf("priority %q is not one of %s", s, PriorityNames)
}

// MarshalText writes Falco's spelling.
func (p Priority) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses a priority name; unknown names are an error that names the value.
func (p *Priority) UnmarshalText(b []byte) error {
	v, err := ParsePriority(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
