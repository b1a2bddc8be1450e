package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"

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
	// Aliases are other names of keys (falcosidekick's spelling of a saker key).
	Aliases []Alias
}

// Alias is a key accepted under another name, such as falcosidekick's
// elasticsearch.batching.batchsize for saker's elasticsearch.batch.maxbytes. Expand turns
// the alias's value into the canonical keys it sets; a canonical key set in the same layer
// wins over its alias. An alias may also carry the path of a key itself, to read that key
// in falcosidekick's unit (otlp.traces.timeout in milliseconds for the delivery timeout):
// it is then applied to every value given for the key.
type Alias struct {
	Path   string
	Type   string // for docs
	Doc    string
	Expand func(value string) (map[string]any, error)
}

// Layer names, as IsSet and SetBy report them.
const (
	LayerFile        = "file"
	LayerEnvironment = "environment"
	LayerFlags       = "flags"
)

// Result is the merged configuration.
type Result struct {
	// Warnings are non-fatal problems: unknown keys (with the closest valid name when there is
	// a close one), falcosidekick outputs this version lacks, environment variables that look
	// like misspelt keys. They name keys and variables, never values.
	Warnings []string
	keys     map[string]Key
	aliases  map[string]Alias
	// setBy records, for every key a layer (file, environment, flags) gave a value, the last
	// layer that did: IsSet answers from it, whatever the value.
	setBy map[string]string
	k     *koanf.Koanf
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
// its Target. Invalid values are reported as Errors naming the key (and the value, unless
// the key is a secret); unknown keys in the file and suspicious environment variables
// become Warnings.
func Load(opts Options) (*Result, error) {
	res := &Result{keys: map[string]Key{}, aliases: map[string]Alias{}, setBy: map[string]string{}, k: koanf.New(".")}
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
	for _, a := range opts.Aliases {
		res.aliases[a.Path] = a
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
		if err := res.merge(LayerFile, flat, &errs); err != nil {
			return nil, fmt.Errorf("merge %s: %w", opts.File, err)
		}
	}
	env := res.readEnv(opts.Environ, &errs)
	if err := res.merge(LayerEnvironment, env, &errs); err != nil {
		return nil, fmt.Errorf("merge environment: %w", err)
	}
	flags := map[string]any{}
	for path, v := range opts.Flags {
		lower := strings.ToLower(path)
		if _, ok := res.aliases[lower]; ok {
			flags[lower] = v
			continue
		}
		if key, ok := res.keys[lower]; ok {
			val, err := parseEnvValue(key, v)
			if err != nil {
				errs = append(errs, fmt.Errorf("--set %s: %w", key.Path, err))
				continue
			}
			flags[key.Path] = val
			continue
		}
		errs = append(errs, fmt.Errorf("flag sets unknown key %q%s", path, res.suggest(lower)))
	}
	if err := res.merge(LayerFlags, flags, &errs); err != nil {
		return nil, fmt.Errorf("merge flags: %w", err)
	}
	// Sections sharing a path (the aws outputs share aws.*) validate the same keys: each
	// problem is reported once.
	seen := map[string]bool{}
	for _, s := range opts.Sections {
		for _, err := range res.decode(s) {
			if msg := err.Error(); !seen[msg] {
				seen[msg] = true
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return res, errs
	}
	return res, nil
}

// merge expands the layer's aliases, records which keys the layer sets and loads it over
// the layers before.
func (r *Result) merge(layer string, flat map[string]any, errs *Errors) error {
	for path, v := range flat {
		a, ok := r.aliases[path]
		if !ok {
			continue
		}
		delete(flat, path)
		expanded, err := a.Expand(fmt.Sprint(v))
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		for k, ev := range expanded {
			if _, own := flat[k]; !own {
				flat[k] = ev
			}
		}
	}
	for path := range flat {
		r.setBy[path] = layer
	}
	return r.k.Load(confmap.Provider(flat, "."), nil)
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
	unsupported := map[string]bool{}
	r.flatten(path, "", doc, flat, unsupported)
	r.reportUnsupported(path+": ", unsupported, nil)
	return flat, nil
}

// flatten walks the YAML document. A null value (a section whose keys are all commented
// out, as in falcosidekick's config_example.yaml) sets nothing and is not reported.
func (r *Result) flatten(file, prefix string, m map[string]any, out map[string]any, unsupported map[string]bool) {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v := m[name]
		path := strings.ToLower(name)
		if prefix != "" {
			path = prefix + "." + path
		}
		if v == nil {
			continue
		}
		if _, ok := r.aliases[path]; ok {
			out[path] = v
			continue
		}
		if key, ok := r.keys[path]; ok {
			if key.Kind == Map {
				switch sub := v.(type) {
				case map[string]any:
					out[path] = stringifyMap(sub)
					continue
				case string: // falcosidekick also read "k:v,k2:v2" strings for maps
					out[path] = sub
					continue
				}
			}
			out[path] = v
			continue
		}
		if sub, ok := v.(map[string]any); ok && r.isPrefix(path) {
			r.flatten(file, path, sub, out, unsupported)
			continue
		}
		if sec := r.unsupportedSection(path); sec != "" {
			if configuresOutput(path, v) {
				unsupported[sec] = true
			}
			continue
		}
		if isFalcosidekickKey(path) {
			if !isBlank(v) {
				r.Warnings = append(r.Warnings, fmt.Sprintf("%s: falcosidekick key %q is not supported by this version; ignored", file, path))
			}
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

// isPrefix reports whether path is a section of known keys or aliases.
func (r *Result) isPrefix(path string) bool {
	for p := range r.keys {
		if strings.HasPrefix(p, path+".") {
			return true
		}
	}
	for p := range r.aliases {
		if strings.HasPrefix(p, path+".") {
			return true
		}
	}
	return false
}

// unsupportedSection returns the falcosidekick section path belongs to when saker has no
// such section ("discord", "aws.s3"), or "".
func (r *Result) unsupportedSection(path string) string {
	parts := strings.Split(path, ".")
	for i := 1; i <= len(parts); i++ {
		sec := strings.Join(parts[:i], ".")
		if !falcosidekickSections()[sec] {
			return ""
		}
		if !r.isPrefix(sec) {
			return sec
		}
	}
	return ""
}

// retiredOutputs are falcosidekick's outputs saker leaves out on purpose, with the reason and
// what to use instead (docs/outputs.md, Retired).
var retiredOutputs = map[string]string{
	"stan": "NATS Streaming (STAN) reached its end of life in 2023; use the nats output, with nats.jetstream for a durable stream",
}

// reportUnsupported adds one warning per falcosidekick output saker lacks, naming the
// environment variables that configured it when they came from the environment.
func (r *Result) reportUnsupported(where string, sections map[string]bool, vars map[string][]string) {
	names := make([]string, 0, len(sections))
	for s := range sections {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		msg := fmt.Sprintf("%soutput %s is not supported by this version; its keys are ignored", where, s)
		if why, ok := retiredOutputs[s]; ok {
			msg = fmt.Sprintf("%soutput %s is retired: %s; its keys are ignored", where, s, why)
		}
		if v := vars[s]; len(v) > 0 {
			sort.Strings(v)
			msg += " (" + strings.Join(v, ", ") + ")"
		}
		r.Warnings = append(r.Warnings, msg)
	}
}

// readEnv picks the environment variables named after known keys and aliases. Variables
// under a falcosidekick or saker section that match no key are reported when they look like
// a key saker lacks or a misspelling; values are never printed. Other variables of the
// environment (PATH, KUBERNETES_*, service links such as REDIS_PORT) are left alone.
func (r *Result) readEnv(environ []string, errs *Errors) map[string]any {
	byName := make(map[string]Key, len(r.keys))
	for _, key := range r.keys {
		byName[key.EnvName()] = key
	}
	aliasByName := make(map[string]string, len(r.aliases))
	for p := range r.aliases {
		aliasByName[EnvName(p)] = p
	}
	out := map[string]any{}
	unsupported := map[string]bool{}
	unsupportedVars := map[string][]string{}
	var odd []string
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if p, known := aliasByName[name]; known {
			out[p] = value
			continue
		}
		if key, known := byName[name]; known {
			v, err := parseEnvValue(key, value)
			if err != nil {
				*errs = append(*errs, fmt.Errorf("%s (%s): %w", key.Path, name, err))
				continue
			}
			out[key.Path] = v
			continue
		}
		if value == "" || name != strings.ToUpper(name) {
			continue
		}
		path := strings.ToLower(strings.ReplaceAll(name, "_", "."))
		top, _, _ := strings.Cut(path, ".")
		if !falcosidekickSections()[top] && !r.isPrefix(top) {
			continue
		}
		if sec := r.unsupportedSection(path); sec != "" {
			if isFalcosidekickKey(path) && configuresOutput(path, value) {
				unsupported[sec] = true
				unsupportedVars[sec] = append(unsupportedVars[sec], name)
			}
			continue
		}
		if isFalcosidekickKey(path) {
			odd = append(odd, fmt.Sprintf("environment variable %s: falcosidekick key %q is not supported by this version; ignored", name, path))
			continue
		}
		if near := r.closeKey(path); near != "" {
			odd = append(odd, fmt.Sprintf("environment variable %s matches no key and is ignored (did you mean %s?)", name, EnvName(near)))
		}
	}
	sort.Strings(odd)
	r.Warnings = append(r.Warnings, odd...)
	r.reportUnsupported("environment: ", unsupported, unsupportedVars)
	return out
}

// tuningKeys are falcosidekick keys that adjust an output but never enable it, often set to
// their default by falcosidekick's example file and Helm chart (opsgenie.region: eu,
// statsd.namespace): an output saker lacks is only reported when another of its keys holds
// a value.
var tuningKeys = map[string]bool{
	"minimumpriority": true, "checkcert": true, "mutualtls": true, "region": true, "outputformat": true,
	"messageformat": true, "format": true, "namespace": true, "port": true, "kubeconfig": true, "icon": true,
	"username": true, "footer": true, "tls": true, "version": true, "apiendpoint": true, "index": true,
	"subjecttemplate": true, "rawjson": true, "routernamespace": true, "routerservice": true, "routerport": true,
	"functionnamespace": true, "gatewayservice": true, "gatewayport": true, "gatewaynamespace": true,
	"interval": true, "batchsize": true, "useemoji": true, "protocol": true, "qos": true, "retained": true,
	"precision": true, "database": true, "organization": true, "metricname": true, "flushintervalseconds": true,
	"endpointmetricport": true, "storagetype": true, "hypertablename": true, "sourcecategory": true,
	"sourcehost": true, "apiurl": true, "source": true, "maxevents": true, "prunebypriority": true,
	"objectcannedacl": true, "prefix": true, "logtype": true, "activityimage": true,
}

// configuresOutput reports whether v, the value of path in a falcosidekick output saker
// lacks, would have configured that output: a value other than blank under a key other
// than a tuning key.
func configuresOutput(path string, v any) bool {
	if m, ok := v.(map[string]any); ok {
		for k, sub := range m {
			if configuresOutput(path+"."+strings.ToLower(k), sub) {
				return true
			}
		}
		return false
	}
	_, leaf := splitLast(path)
	return !tuningKeys[leaf] && !isBlank(v)
}

// isBlank reports a value that configures nothing: empty string, empty map or list, false
// or zero. A falcosidekick output whose keys are all blank was not enabled there either.
func isBlank(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case int:
		return x == 0
	case float64:
		return x == 0
	case map[string]any:
		for _, sub := range x {
			if !isBlank(sub) {
				return false
			}
		}
		return true
	case []any:
		return len(x) == 0
	}
	return false
}

// parseEnvValue reads maps as "k:v,k2:v2" and lists as "a,b" (falcosidekick's env syntax).
// A map item without a colon is an error that names its position, not its text: map
// values are often headers holding credentials.
func parseEnvValue(key Key, v string) (any, error) {
	switch key.Kind {
	case Map:
		m := map[string]any{}
		for i, pair := range strings.Split(v, ",") {
			if strings.TrimSpace(pair) == "" {
				continue
			}
			k, val, ok := strings.Cut(pair, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, fmt.Errorf("item %d is not name:value (expected \"name:value,name2:value2\")", i+1)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
		return m, nil
	case List:
		var l []any
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				l = append(l, item)
			}
		}
		return l, nil
	}
	return v, nil
}

// decode fills the section's Target, returning every problem found.
func (r *Result) decode(s Section) []error {
	if s.Prepare != nil {
		s.Prepare()
	}
	var errs []error
	for _, key := range s.Keys() {
		if key.Kind != Map {
			continue
		}
		if text, ok := r.k.Get(key.Path).(string); ok {
			m, err := parseEnvValue(key, text)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key.Path, err))
				m = map[string]any{}
			}
			r.k.Delete(key.Path)
			if err := r.k.Load(confmap.Provider(map[string]any{key.Path: m}, "."), nil); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key.Path, err))
			}
		}
	}
	if len(errs) > 0 {
		return errs
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
			if r.isSecret(path) {
				msg = "invalid value (secret, not shown)"
			} else if v := r.k.Get(path); v != nil {
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

// suggest names the closest known key, for typos such as "slack.webhookur", and only a
// close one: a key whose last segment is within a small edit distance of a known key's
// under the same section.
func (r *Result) suggest(path string) string {
	if near := r.closeKey(path); near != "" {
		return fmt.Sprintf(" (did you mean %q?)", near)
	}
	return ""
}

// closeKey returns the known key (or alias) closest to path under the same parent section,
// when the edit distance is small relative to the length; "" otherwise.
func (r *Result) closeKey(path string) string {
	parent, leaf := splitLast(path)
	best, bestDist := "", 1<<30
	consider := func(p string) {
		pp, pl := splitLast(p)
		if pp != parent {
			return
		}
		if d := editDistance(leaf, pl); d < bestDist || (d == bestDist && p < best) {
			best, bestDist = p, d
		}
	}
	for p := range r.keys {
		consider(p)
	}
	for p := range r.aliases {
		consider(p)
	}
	if best == "" || bestDist > maxTypoDistance(leaf) {
		return ""
	}
	return best
}

// maxTypoDistance is how many edits still look like a typo of a name this long: one for
// short names, two from six characters, three from twelve.
func maxTypoDistance(name string) int {
	switch n := len(name); {
	case n >= 12:
		return 3
	case n >= 6:
		return 2
	case n >= 3:
		return 1
	}
	return 0
}

func splitLast(path string) (parent, leaf string) {
	if i := strings.LastIndex(path, "."); i >= 0 {
		return path[:i], path[i+1:]
	}
	return "", path
}

// editDistance is the optimal string alignment distance: insertions, deletions,
// substitutions and transpositions of adjacent characters (webhookrul/webhookurl is 1).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

var (
	fskOnce     sync.Once
	fskKeys     map[string]bool
	fskSections map[string]bool
)

func loadFalcosidekickKeys() {
	fskKeys = make(map[string]bool, len(falcosidekickKeys))
	fskSections = map[string]bool{}
	for _, k := range falcosidekickKeys {
		fskKeys[k] = true
		parts := strings.Split(k, ".")
		for i := 1; i < len(parts); i++ {
			fskSections[strings.Join(parts[:i], ".")] = true
		}
	}
}

// falcosidekickSections are the paths that hold falcosidekick keys ("slack", "aws.s3").
func falcosidekickSections() map[string]bool {
	fskOnce.Do(loadFalcosidekickKeys)
	return fskSections
}

func isFalcosidekickKey(path string) bool {
	fskOnce.Do(loadFalcosidekickKeys)
	return fskKeys[path]
}

// IsSet reports whether the file, the environment or a flag gave the key (or, for a section
// path, any key under it) a value, whatever that value is: a file saying
// `maxconcurrentrequests: 4` sets it even though 4 is the default.
func (r *Result) IsSet(path string) bool {
	return r.SetBy(path) != ""
}

// SetBy names the last layer (LayerFile, LayerEnvironment, LayerFlags) that set the key or a
// key under it; "" when it is at its default.
func (r *Result) SetBy(path string) string {
	if layer, ok := r.setBy[path]; ok {
		return layer
	}
	rank := map[string]int{LayerFile: 1, LayerEnvironment: 2, LayerFlags: 3}
	best := ""
	for p, layer := range r.setBy {
		if strings.HasPrefix(p, path+".") && rank[layer] > rank[best] {
			best = layer
		}
	}
	return best
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
