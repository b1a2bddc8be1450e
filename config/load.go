package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
	"go.yaml.in/yaml/v3"
)

// Options say where configuration comes from. Later sources override earlier ones:
// defaults < File < Environ < Flags.
type Options struct {
	File     string            // YAML file; empty for none
	Environ  []string          // os.Environ() style "NAME=value" pairs
	Flags    map[string]string // key path -> value, from --set and dedicated flags
	Sections []Section
}

// Result is the merged configuration.
type Result struct {
	// Warnings are non-fatal problems: unknown keys, with the closest valid name.
	Warnings []string
	keys     map[string]Key
	k        *koanf.Koanf
}

// Errors collects every configuration problem so `config check` can list them all at once.
type Errors []error

func (e Errors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

// Load merges defaults, the file, the environment and flags, then decodes each section into
// its Target. Invalid values are reported as Errors naming the key and the value; unknown keys
// in the file become Warnings.
func Load(opts Options) (*Result, error) {
	res := &Result{keys: map[string]Key{}, k: koanf.New(".")}
	defaults := map[string]any{}
	for _, s := range opts.Sections {
		for _, key := range s.Keys() {
			if _, dup := res.keys[key.Path]; !dup {
				res.keys[key.Path] = key
				if !s.Inherit {
					defaults[key.Path] = key.Default
				}
			}
		}
	}
	var errs Errors
	if err := res.k.Load(confmap.Provider(defaults, "."), nil); err != nil {
		return nil, fmt.Errorf("load defaults: %w", err)
	}
	if opts.File != "" {
		flat, err := res.readFile(opts.File)
		if err != nil {
			return nil, err
		}
		if err := res.k.Load(confmap.Provider(flat, "."), nil); err != nil {
			return nil, fmt.Errorf("merge %s: %w", opts.File, err)
		}
	}
	env := res.readEnv(opts.Environ)
	if err := res.k.Load(confmap.Provider(env, "."), nil); err != nil {
		return nil, fmt.Errorf("merge environment: %w", err)
	}
	flags := map[string]any{}
	for path, v := range opts.Flags {
		key, ok := res.keys[strings.ToLower(path)]
		if !ok {
			errs = append(errs, fmt.Errorf("flag sets unknown key %q%s", path, res.suggest(path)))
			continue
		}
		flags[key.Path] = parseEnvValue(key, v)
	}
	if err := res.k.Load(confmap.Provider(flags, "."), nil); err != nil {
		return nil, fmt.Errorf("merge flags: %w", err)
	}
	for _, s := range opts.Sections {
		errs = append(errs, res.decode(s)...)
	}
	if len(errs) > 0 {
		return res, errs
	}
	return res, nil
}

// readFile parses the YAML file into a flat map of canonical key paths. Keys are matched
// case-insensitively (falcosidekick's viper did); map values keep their keys as written.
func (r *Result) readFile(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse config file %s: %w", path, err)
	}
	flat := map[string]any{}
	r.flatten(path, "", doc, flat)
	return flat, nil
}

func (r *Result) flatten(file, prefix string, m map[string]any, out map[string]any) {
	for name, v := range m {
		path := strings.ToLower(name)
		if prefix != "" {
			path = prefix + "." + path
		}
		if key, ok := r.keys[path]; ok {
			if key.Kind == Map {
				if sub, isMap := v.(map[string]any); isMap {
					out[path] = stringifyMap(sub)
					continue
				}
			}
			out[path] = v
			continue
		}
		if sub, ok := v.(map[string]any); ok && r.isPrefix(path) {
			r.flatten(file, path, sub, out)
			continue
		}
		r.Warnings = append(r.Warnings, fmt.Sprintf("%s: unknown key %q ignored%s", file, path, r.suggest(path)))
	}
}

func stringifyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if v == nil {
			v = ""
		}
		out[k] = fmt.Sprint(v)
	}
	return out
}

func (r *Result) isPrefix(path string) bool {
	for p := range r.keys {
		if strings.HasPrefix(p, path+".") {
			return true
		}
	}
	return false
}

// readEnv picks the environment variables named after known keys.
func (r *Result) readEnv(environ []string) map[string]any {
	byName := make(map[string]Key, len(r.keys))
	for _, key := range r.keys {
		byName[key.EnvName()] = key
	}
	out := map[string]any{}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if key, known := byName[name]; known {
			out[key.Path] = parseEnvValue(key, value)
		}
	}
	return out
}

// parseEnvValue reads maps as "k:v,k2:v2" and lists as "a,b" (falcosidekick's env syntax).
func parseEnvValue(key Key, v string) any {
	switch key.Kind {
	case Map:
		m := map[string]any{}
		for _, pair := range strings.Split(v, ",") {
			if strings.TrimSpace(pair) == "" {
				continue
			}
			k, val, _ := strings.Cut(pair, ":")
			m[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
		return m
	case List:
		var l []any
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				l = append(l, item)
			}
		}
		return l
	}
	return v
}

// decode fills the section's Target, returning every problem found.
func (r *Result) decode(s Section) []error {
	if s.Prepare != nil {
		s.Prepare()
	}
	var md mapstructure.Metadata
	conf := koanf.UnmarshalConf{Tag: "koanf", DecoderConfig: &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
			mapstructure.TextUnmarshallerHookFunc()),
		Metadata:         &md,
		Result:           s.Target,
		WeaklyTypedInput: true,
		TagName:          "koanf",
		Squash:           true,
	}}
	if err := r.k.UnmarshalWithConf(s.Path, s.Target, conf); err != nil {
		return r.describeDecodeErrors(s.Path, err)
	}
	if v, ok := s.Target.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return []error{err}
		}
	}
	return nil
}

// describeDecodeErrors turns mapstructure's errors into one error per key, each naming the
// full key path and the value that did not fit: `webhook.timeout: invalid value "5 parsecs":
// time: invalid duration "5 parsecs"`.
func (r *Result) describeDecodeErrors(section string, err error) []error {
	var out []error
	var walk func(error)
	walk = func(err error) {
		var de *mapstructure.DecodeError
		if errors.As(err, &de) && de.Name() != "" {
			path := de.Name()
			if section != "" {
				path = section + "." + path
			}
			msg := "invalid value"
			if v := r.k.Get(path); v != nil {
				msg = fmt.Sprintf("invalid value %q", fmt.Sprint(v))
			}
			out = append(out, fmt.Errorf("%s: %s: %v", path, msg, de.Unwrap()))
			return
		}
		if multi, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range multi.Unwrap() {
				walk(e)
			}
			return
		}
		if next := errors.Unwrap(err); next != nil {
			walk(next)
			return
		}
		msg := strings.ReplaceAll(err.Error(), "decoding failed due to the following error(s):\n\n", "")
		if section != "" {
			out = append(out, fmt.Errorf("invalid value under %q: %s", section, msg))
		} else {
			out = append(out, fmt.Errorf("invalid value: %s", msg))
		}
	}
	walk(err)
	return out
}

// suggest names the closest known key, for typos such as "slack.webhookur".
func (r *Result) suggest(path string) string {
	best, bestDist := "", 1<<30
	for p := range r.keys {
		if d := levenshtein(path, p); d < bestDist || (d == bestDist && p < best) {
			best, bestDist = p, d
		}
	}
	if best == "" || bestDist > len(path)/2+2 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// IsSet reports whether a key was given a value by the file, environment or flags rather
// than left at its default.
func (r *Result) IsSet(path string) bool {
	if !r.k.Exists(path) {
		return false // not even a default: an inheriting section's key left unset
	}
	key, ok := r.keys[path]
	return !ok || !reflect.DeepEqual(r.k.Get(path), key.Default)
}

// Redacted returns every effective key and value, sorted, with secrets replaced, for
// `saker config check`.
func (r *Result) Redacted() []string {
	all := r.k.All()
	paths := make([]string, 0, len(all))
	for p := range all {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		v := all[p]
		if r.isSecret(p) && !isEmpty(v) {
			v = "REDACTED"
		}
		out = append(out, fmt.Sprintf("%s: %v", p, v))
	}
	return out
}

func (r *Result) isSecret(path string) bool {
	for p := path; p != ""; {
		if key, ok := r.keys[p]; ok {
			return key.Secret
		}
		i := strings.LastIndex(p, ".")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return false
}

// Unwrap exposes each problem to errors.Is/As and to callers listing them.
func (e Errors) Unwrap() []error { return e }

func isEmpty(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Map, reflect.Slice:
		return rv.Len() == 0
	}
	return false
}
