// Package config loads saker's configuration the way falcosidekick users expect: a YAML file
// (-c), environment variables named after the key path (SLACK_WEBHOOKURL, AWS_SQS_URL), and
// flags, in that order of precedence, into plain structs that components declare once.
//
// A component declares its keys as a struct with `koanf` tags and its defaults as the struct's
// initial value; optional tags: `secret:"true"` (redacted in `config check`), `doc:"..."`.
// The set of known keys, the environment variable names, the unknown-key warnings and the
// reference documentation all derive from those structs.
package config

import (
	"reflect"
	"sort"
	"strings"
	"time"
)

// Kind is the shape of a key's value, which decides how an environment variable is read.
type Kind int

// Value kinds.
const (
	Scalar Kind = iota // string, number, bool, duration
	List               // comma-separated in env
	Map                // "k:v,k2:v2" in env
)

// Key describes one configuration key.
type Key struct {
	Path    string // "slack.webhookurl"
	Kind    Kind
	Type    string // Go type, for docs
	Default any
	Secret  bool
	Doc     string
}

// EnvName is the environment variable for the key: upper case, dots as underscores.
func (k Key) EnvName() string { return EnvName(k.Path) }

// EnvName turns a key path into its environment variable name.
func EnvName(path string) string {
	return strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// Section binds a key path prefix ("" for top level) to a pointer to a struct holding the
// defaults; Load decodes the merged configuration into it.
type Section struct {
	Path   string
	Target any
	// Inherit marks a section whose unset keys keep the Target's current values instead of
	// taking defaults: per-output delivery settings start from the global ones this way.
	Inherit bool
	// Prepare runs just before the section is decoded, after the sections before it: an
	// inheriting section copies the decoded global values into its Target here.
	Prepare func()
}

// Keys lists the keys a section declares, sorted by path.
func (s Section) Keys() []Key {
	var out []Key
	walk(s.Path, reflect.ValueOf(s.Target), &out)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

var durationType = reflect.TypeOf(time.Duration(0))

func walk(prefix string, v reflect.Value, out *[]Key) {
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("koanf")
		if tag == "-" {
			continue
		}
		name := strings.Split(tag, ",")[0]
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			if strings.Contains(tag, ",squash") {
				walk(prefix, fv, out)
			} else {
				walk(path, fv, out)
			}
			continue
		}
		k := Key{Path: path, Type: typeName(f.Type), Default: fv.Interface(), Secret: f.Tag.Get("secret") == "true", Doc: f.Tag.Get("doc")}
		switch f.Type.Kind() {
		case reflect.Slice:
			k.Kind = List
		case reflect.Map:
			k.Kind = Map
		}
		*out = append(*out, k)
	}
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem())
	case t.Kind() == reflect.Map:
		return "map of " + typeName(t.Elem())
	}
	return t.Kind().String()
}
