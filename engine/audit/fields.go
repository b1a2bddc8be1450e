package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/saker-dev/saker/engine/rules"
)

// SourceName is the Falco event source the audit rules declare.
const SourceName = "k8s_audit"

// Source is the k8s_audit event source for the rule engine: it resolves the k8saudit
// plugin's ka.* fields, the json plugin's json.* / jevt.* fields and evt.time. Fields are
// extracted from *Event values; each distinct field reference gets a cache slot, so a
// field that many rules test is extracted once per event.
type Source struct {
	mu  sync.Mutex
	ids map[string]int
}

// NewSource returns a k8s_audit source.
func NewSource() *Source { return &Source{ids: make(map[string]int)} }

var _ rules.Source = (*Source)(nil)

// Name returns "k8s_audit".
func (s *Source) Name() string { return SourceName }

// TimeNanos returns the event time of an *Event (its stageTimestamp), 0 for anything else.
func (s *Source) TimeNanos(ev any) int64 {
	if e, ok := ev.(*Event); ok {
		return e.time
	}
	return 0
}

// argKind says which argument a field takes.
type argKind uint8

const (
	argNone     argKind = iota // no argument
	argIndex                   // optional index: a number filters one element, anything else is ignored
	argKey                     // required key (ka.uri.param[key], ka.req.volume.hostpath[path])
	argPointer                 // required JSON pointer (json.value[/a/b])
	argOptional                // accepted and ignored (deprecated ka.req.binding.subject.has_name)
)

// fieldArg is a field reference's compiled argument.
type fieldArg struct {
	raw   string
	index int      // -1: no index filter
	keys  []string // JSON pointer tokens
}

type extractFn func(ev *Event, out []string, a *fieldArg) ([]string, bool)

type fieldSpec struct {
	list bool
	arg  argKind
	fn   extractFn
}

// Field resolves a field reference. The error names the field and its argument.
func (s *Source) Field(name, arg string, hasArg bool) (rules.Field, error) {
	spec, ok := fieldSpecs[name]
	if !ok {
		return rules.Field{}, fmt.Errorf("k8s_audit: unknown field %q", name)
	}
	fa := &fieldArg{raw: arg, index: -1}
	switch spec.arg {
	case argNone:
		if hasArg {
			return rules.Field{}, fmt.Errorf("k8s_audit: field %q does not take an argument (got [%s])", name, arg)
		}
	case argIndex:
		if n, err := strconv.Atoi(arg); err == nil {
			fa.index = n
		}
	case argKey, argPointer:
		if arg == "" {
			return rules.Field{}, fmt.Errorf("k8s_audit: field %q requires an argument, as in %s[key]", name, name)
		}
		if spec.arg == argPointer {
			fa.keys = splitPointer(arg)
		}
	}
	ref := name
	if hasArg {
		ref += "[" + arg + "]"
	}
	s.mu.Lock()
	id, ok := s.ids[ref]
	if !ok {
		id = len(s.ids)
		s.ids[ref] = id
	}
	s.mu.Unlock()

	fn := spec.fn
	extract := func(evAny any, buf []string) ([]string, bool) {
		ev, _ := evAny.(*Event)
		if ev == nil || ev.raw == nil {
			return buf[:0], false
		}
		sl := ev.slot(id)
		if sl.gen != ev.gen {
			sl.vals, sl.ok = fn(ev, sl.vals[:0], fa)
			if len(sl.vals) == 0 {
				sl.ok = false
			}
			sl.gen = ev.gen
		}
		if !sl.ok {
			return buf[:0], false
		}
		return append(buf[:0], sl.vals...), true
	}
	list := spec.list
	output := func(evAny any) any {
		vals, ok := extract(evAny, nil)
		if !ok {
			return nil
		}
		// Copies: the extracted strings point into the event's reusable buffers.
		if !list {
			return strings.Clone(vals[0])
		}
		for i := range vals {
			vals[i] = strings.Clone(vals[i])
		}
		return vals
	}
	return rules.Field{List: list, Extract: extract, OutputValue: output}, nil
}

// FieldNames lists every field name the source knows (without arguments); the rule engine
// uses it to split output tokens such as "%ka.target.name/..." exactly as Falco does.
func (s *Source) FieldNames() []string {
	names := make([]string, 0, len(fieldSpecs))
	for n := range fieldSpecs {
		names = append(names, n)
	}
	return names
}

// splitPointer splits an RFC 6901 JSON pointer into unescaped tokens; as the json plugin
// does, a missing leading '/' is tolerated.
func splitPointer(p string) []string {
	p = strings.TrimPrefix(p, "/")
	keys := strings.Split(p, "/")
	for i, k := range keys {
		k = strings.ReplaceAll(k, "~1", "/")
		keys[i] = strings.ReplaceAll(k, "~0", "~")
	}
	return keys
}

// Paths used by the extractors, allocated once.
var (
	pRequestURI    = []string{"requestURI"}
	pObjectRefRes  = []string{"objectRef", "resource"}
	pRespKind      = []string{"responseObject", "kind"}
	pRespName      = []string{"responseObject", "metadata", "name"}
	pVolumes       = []string{"requestObject", "spec", "volumes"}
	pRules         = []string{"requestObject", "rules"}
	pSubjects      = []string{"requestObject", "subjects"}
	pServicePorts  = []string{"requestObject", "spec", "ports"}
	pContainers    = []string{"requestObject", "spec", "containers"}
	pInitConts     = []string{"requestObject", "spec", "initContainers"}
	pEphemConts    = []string{"requestObject", "spec", "ephemeralContainers"}
	pPodRunAsUser  = []string{"requestObject", "spec", "securityContext", "runAsUser"}
	pPodRunAsGroup = []string{"requestObject", "spec", "securityContext", "runAsGroup"}
)

// one extracts the value at path as one string (the plugin's extractFromKeys).
func one(path ...string) extractFn {
	return func(ev *Event, out []string, _ *fieldArg) ([]string, bool) {
		v, ok := ev.get(path...)
		if !ok {
			return out, false
		}
		return append(out, ev.text(v)), true
	}
}

// listAt extracts the array at path, one string per element.
func listAt(path ...string) extractFn {
	return func(ev *Event, out []string, _ *fieldArg) ([]string, bool) {
		v, ok := ev.get(path...)
		if !ok || ev.kind(v) != '[' {
			return out, false
		}
		it := newArrIter(ev.raw, v)
		for it.next() {
			out = append(out, ev.text(it.val))
		}
		return out, true
	}
}

// elems calls fn for the elements of the array at path, or only for element index when
// the field has a numeric argument. ok is false when there is no array (or no such element).
func elems(ev *Event, path []string, index int, fn func(el span)) bool {
	v, ok := ev.get(path...)
	if !ok || ev.kind(v) != '[' {
		return false
	}
	it := newArrIter(ev.raw, v)
	if index == -1 {
		for it.next() {
			fn(it.val)
		}
		return true
	}
	if index < 0 {
		return false
	}
	for k := 0; it.next(); k++ {
		if k == index {
			fn(it.val)
			return true
		}
	}
	return false
}

// path follows keys from v.
func (ev *Event) path(v span, keys ...string) (span, bool) {
	ok := true
	for _, k := range keys {
		if v, ok = ev.child(v, k); !ok {
			break
		}
	}
	return v, ok
}

// perElem extracts, for each element of the array at path, the value at keys, skipping
// elements that lack it.
func perElem(path []string, keys ...string) extractFn {
	return func(ev *Event, out []string, a *fieldArg) ([]string, bool) {
		ok := elems(ev, path, a.index, func(el span) {
			if v, ok := ev.path(el, keys...); ok {
				out = append(out, ev.text(v))
			}
		})
		return out, ok
	}
}

// perElemFlat is perElem where the value at keys is itself a list whose elements are
// extracted one by one (a non-array value is extracted as it is).
func perElemFlat(path []string, keys ...string) extractFn {
	return func(ev *Event, out []string, a *fieldArg) ([]string, bool) {
		ok := elems(ev, path, a.index, func(el span) {
			v, ok := ev.path(el, keys...)
			if !ok {
				return
			}
			if ev.kind(v) != '[' {
				out = append(out, ev.text(v))
				return
			}
			it := newArrIter(ev.raw, v)
			for it.next() {
				out = append(out, ev.text(it.val))
			}
		})
		return out, ok
	}
}

// rulesField extracts a key of every role rule; array values are flattened and anything
// else ignored, as the plugin does.
func rulesField(key string) extractFn {
	return func(ev *Event, out []string, a *fieldArg) ([]string, bool) {
		ok := elems(ev, pRules, a.index, func(el span) {
			v, ok := ev.path(el, key)
			if !ok || ev.kind(v) != '[' {
				return
			}
			it := newArrIter(ev.raw, v)
			for it.next() {
				out = append(out, ev.text(it.val))
			}
		})
		return out, ok
	}
}

// repository is the plugin's repository of an image reference: the part before the first
// ':' and then before the first '@' (so "host:5000/app:v1" gives "host", as upstream).
func repository(image string) string {
	if i := strings.IndexByte(image, ':'); i >= 0 {
		image = image[:i]
	}
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	return image
}

func images(path []string, repo bool) extractFn {
	return func(ev *Event, out []string, a *fieldArg) ([]string, bool) {
		ok := elems(ev, path, a.index, func(el span) {
			if v, ok := ev.path(el, "image"); ok {
				s := ev.text(v)
				if repo {
					s = repository(s)
				}
				out = append(out, s)
			}
		})
		return out, ok
	}
}

// firstImage is the deprecated single-valued ka.req.container.image(.repository).
func firstImage(repo bool) extractFn {
	return func(ev *Event, out []string, _ *fieldArg) ([]string, bool) {
		v, ok := ev.get(pContainers...)
		if !ok {
			return out, false
		}
		el, ok := child(ev.raw, v, "0")
		if !ok {
			return out, false
		}
		img, ok := child(ev.raw, el, "image")
		if !ok {
			return out, false
		}
		s := ev.text(img)
		if repo {
			s = repository(s)
		}
		return append(out, s), true
	}
}

func hostPorts(path []string) extractFn {
	return func(ev *Event, out []string, a *fieldArg) ([]string, bool) {
		ok := elems(ev, path, a.index, func(el span) {
			ports, ok := child(ev.raw, el, "ports")
			if !ok || ev.kind(ports) != '[' {
				return
			}
			it := newArrIter(ev.raw, ports)
			for it.next() {
				if v, ok := child(ev.raw, it.val, "hostPort"); ok {
					out = append(out, ev.text(v))
				} else if v, ok := child(ev.raw, it.val, "containerPort"); ok {
					// With hostNetwork, the container port is the host port.
					out = append(out, ev.text(v))
				}
			}
		})
		return out, ok
	}
}

// effective is the uid/gid a container starts with: its own securityContext value, else
// the pod's, else 0.
func effective(path, podPath []string, key string) extractFn {
	return func(ev *Event, out []string, a *fieldArg) ([]string, bool) {
		pod := "0"
		if v, ok := ev.get(podPath...); ok {
			pod = ev.text(v)
		}
		ok := elems(ev, path, a.index, func(el span) {
			if v, ok := ev.path(el, "securityContext", key); ok {
				out = append(out, ev.text(v))
			} else {
				out = append(out, pod)
			}
		})
		return out, ok
	}
}

func anyPrivileged(ev *Event, out []string, _ *fieldArg) ([]string, bool) {
	priv := false
	ok := elems(ev, pContainers, -1, func(el span) {
		if v, ok := ev.path(el, "securityContext", "privileged"); ok && ev.raw[v.s] == 't' {
			priv = true
		}
	})
	if !ok {
		return out, false
	}
	return append(out, strconv.FormatBool(priv)), true
}

func volumeTypes(ev *Event, out []string, a *fieldArg) ([]string, bool) {
	bad := false
	ok := elems(ev, pVolumes, a.index, func(el span) {
		if ev.kind(el) != '{' {
			bad = true
			return
		}
		it := newObjIter(ev.raw, el)
		for it.next() {
			if !it.keyIs("name") {
				k := it.key
				if it.keyEsc {
					start := len(ev.arena)
					ev.arena = appendUnescaped(ev.arena, k)
					out = append(out, ev.arenaString(start))
				} else {
					out = append(out, bstr(k))
				}
			}
		}
	})
	return out, ok && !bad
}

// volumeHostPath is the deprecated ka.req.volume.hostpath[path]: "true" when a hostPath
// volume uses path (or, for "prefix*", a path starting with prefix).
func volumeHostPath(ev *Event, out []string, a *fieldArg) ([]string, bool) {
	arg := a.raw
	prefix, isPrefix := strings.CutSuffix(arg, "*")
	found := false
	ok := elems(ev, pVolumes, -1, func(el span) {
		if v, ok := ev.path(el, "hostPath", "path"); ok {
			p := ev.text(v)
			if (isPrefix && strings.HasPrefix(p, prefix)) || p == arg {
				found = true
			}
		}
	})
	if !ok {
		return out, false
	}
	return append(out, strconv.FormatBool(found)), true
}

func servicePorts(ev *Event, out []string, a *fieldArg) ([]string, bool) {
	v, ok := ev.get(pServicePorts...)
	if !ok {
		return out, false
	}
	if a.index == -1 {
		// As the plugin: the whole ports array as one value.
		return append(out, ev.text(v)), true
	}
	ok = elems(ev, pServicePorts, a.index, func(el span) { out = append(out, ev.text(el)) })
	return out, ok
}

// subjectNames lists the names of binding subjects of one kind ("User", "Group",
// "ServiceAccount"); withNS prefixes "namespace:".
func subjectNames(kind string, withNS bool) extractFn {
	return func(ev *Event, out []string, _ *fieldArg) ([]string, bool) {
		ok := elems(ev, pSubjects, -1, func(el span) {
			k, ok := child(ev.raw, el, "kind")
			if !ok {
				return
			}
			if ks, isStr := ev.rawString(k); !isStr || ks != kind {
				return
			}
			n, ok := child(ev.raw, el, "name")
			if !ok {
				return
			}
			if !withNS {
				out = append(out, ev.text(n))
				return
			}
			ns := ""
			if v, ok := child(ev.raw, el, "namespace"); ok {
				ns = ev.text(v)
			}
			start := len(ev.arena)
			ev.arena = append(ev.arena, ns...)
			ev.arena = append(ev.arena, ':')
			ev.arena = append(ev.arena, ev.text(n)...)
			out = append(out, ev.arenaString(start))
		})
		return out, ok
	}
}

func uriParam(ev *Event, out []string, a *fieldArg) ([]string, bool) {
	v, ok := ev.get(pRequestURI...)
	if !ok {
		return out, false
	}
	u, err := url.Parse(ev.text(v))
	if err != nil {
		return out, false
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return out, false
	}
	if p := q[a.raw]; len(p) > 0 {
		return append(out, p[0]), true
	}
	return out, false
}

func targetPodName(ev *Event, out []string, _ *fieldArg) ([]string, bool) {
	k, ok := ev.get(pRespKind...)
	if !ok {
		return out, false
	}
	if s, isStr := ev.rawString(k); !isStr || s != "Pod" {
		return out, false
	}
	v, ok := ev.get(pRespName...)
	if !ok {
		return out, false
	}
	return append(out, ev.text(v)), true
}

func jsonValue(ev *Event, out []string, a *fieldArg) ([]string, bool) {
	v, ok := ev.get(a.keys...)
	if !ok {
		return out, false
	}
	return append(out, ev.text(v)), true
}

// jsonObject renders the whole event as the json plugin's json.obj: indented by two spaces.
func jsonObject(ev *Event, out []string, _ *fieldArg) ([]string, bool) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, ev.raw, "", "  "); err != nil {
		return out, false
	}
	start := len(ev.arena)
	ev.arena = append(ev.arena, buf.Bytes()...)
	return append(out, ev.arenaString(start)), true
}

func rawTime(ev *Event, out []string, _ *fieldArg) ([]string, bool) {
	return append(out, ev.appendInt(ev.time)), true
}

// clockTime is Falco's jevt.time text: "15:04:05.000000000" in local time.
func clockTime(ev *Event, out []string, _ *fieldArg) ([]string, bool) {
	start := len(ev.arena)
	ev.arena = time.Unix(0, ev.time).AppendFormat(ev.arena, "15:04:05.000000000")
	return append(out, ev.arenaString(start)), true
}

func isoTime(ev *Event, out []string, _ *fieldArg) ([]string, bool) {
	start := len(ev.arena)
	ev.arena = time.Unix(0, ev.time).UTC().AppendFormat(ev.arena, "2006-01-02T15:04:05.000000000Z")
	return append(out, ev.arenaString(start)), true
}

func always(v string) extractFn {
	return func(_ *Event, out []string, _ *fieldArg) ([]string, bool) { return append(out, v), true }
}

var fieldSpecs = map[string]fieldSpec{}

func str(name string, fn extractFn)               { fieldSpecs[name] = fieldSpec{fn: fn} }
func strArg(name string, k argKind, fn extractFn) { fieldSpecs[name] = fieldSpec{arg: k, fn: fn} }
func list(name string, k argKind, fn extractFn) {
	fieldSpecs[name] = fieldSpec{list: true, arg: k, fn: fn}
}

func init() {
	ann := func(k string) extractFn { return one("annotations", k) }
	str("ka.auditid", one("auditID"))
	str("ka.stage", one("stage"))
	str("ka.auth.decision", ann("authorization.k8s.io/decision"))
	str("ka.auth.reason", ann("authorization.k8s.io/reason"))
	str("ka.auth.openshift.decision", ann("authentication.openshift.io/decision"))
	str("ka.auth.openshift.username", ann("authentication.openshift.io/username"))
	str("ka.validations.admission.policy.failure", ann("validation.policy.admission.k8s.io/validation_failure"))
	str("ka.security.pod.violations", ann("pod-security.kubernetes.io/audit-violations"))
	str("ka.cluster.name", ann("cluster-name"))
	str("ka.user.name", one("user", "username"))
	list("ka.user.groups", argNone, listAt("user", "groups"))
	str("ka.impuser.name", one("impersonatedUser", "username"))
	str("ka.verb", one("verb"))
	str("ka.uri", one("requestURI"))
	strArg("ka.uri.param", argKey, uriParam)
	str("ka.target.name", one("objectRef", "name"))
	str("ka.target.namespace", one("objectRef", "namespace"))
	str("ka.target.resource", one(pObjectRefRes...))
	str("ka.target.subresource", one("objectRef", "subresource"))
	str("ka.target.pod.name", targetPodName)
	list("ka.req.binding.subjects", argNone, listAt(pSubjects...))
	list("ka.req.binding.subjects.user_names", argNone, subjectNames("User", false))
	list("ka.req.binding.subjects.serviceaccount_names", argNone, subjectNames("ServiceAccount", false))
	list("ka.req.binding.subjects.serviceaccount_ns_names", argNone, subjectNames("ServiceAccount", true))
	list("ka.req.binding.subjects.group_names", argNone, subjectNames("Group", false))
	str("ka.req.binding.role", one("requestObject", "roleRef", "name"))
	// Documented as N/A, but Falco's original implementation (and the plugin) return "true".
	strArg("ka.req.binding.subject.has_name", argKey, always("true"))
	str("ka.req.configmap.name", one("objectRef", "name"))
	str("ka.req.configmap.obj", one("requestObject", "data"))
	str("ka.req.container.image", firstImage(false))
	str("ka.req.container.image.repository", firstImage(true))
	str("ka.req.pod.host_ipc", one("requestObject", "spec", "hostIPC"))
	str("ka.req.pod.host_network", one("requestObject", "spec", "hostNetwork"))
	str("ka.req.container.host_network", one("requestObject", "spec", "hostNetwork"))
	str("ka.req.pod.host_pid", one("requestObject", "spec", "hostPID"))
	str("ka.req.container.privileged", anyPrivileged)
	str("ka.req.pod.run_as_user", one(pPodRunAsUser...))
	str("ka.req.pod.run_as_group", one(pPodRunAsGroup...))
	str("ka.req.pod.fs_group", one("requestObject", "spec", "securityContext", "fsGroup"))
	list("ka.req.pod.supplemental_groups", argNone, listAt("requestObject", "spec", "securityContext", "supplementalGroups"))
	list("ka.req.role.rules", argNone, listAt(pRules...))
	list("ka.req.role.rules.apiGroups", argIndex, rulesField("apiGroups"))
	list("ka.req.role.rules.nonResourceURLs", argIndex, rulesField("nonResourceURLs"))
	list("ka.req.role.rules.verbs", argIndex, rulesField("verbs"))
	list("ka.req.role.rules.resources", argIndex, rulesField("resources"))
	str("ka.req.service.type", one("requestObject", "spec", "type"))
	list("ka.req.service.ports", argIndex, servicePorts)
	list("ka.req.pod.volumes.hostpath", argIndex, perElem(pVolumes, "hostPath", "path"))
	list("ka.req.pod.volumes.flexvolume_driver", argIndex, perElem(pVolumes, "flexVolume", "driver"))
	list("ka.req.pod.volumes.volume_type", argIndex, volumeTypes)
	strArg("ka.req.volume.hostpath", argKey, volumeHostPath)
	str("ka.resp.name", one(pRespName...))
	str("ka.response.code", one("responseStatus", "code"))
	str("ka.response.reason", one("responseStatus", "reason"))
	str("ka.useragent", one("userAgent"))
	// As the plugin 0.18 does (and the golden values record): source IPs are looked up in
	// the request object's role rules, so the field is practically never available.
	list("ka.sourceips", argIndex, rulesField("sourceIPs"))

	for _, c := range []struct {
		name string
		path []string
	}{{"containers", pContainers}, {"initContainers", pInitConts}, {"ephemeralContainers", pEphemConts}} {
		p := "ka.req.pod." + c.name + "."
		list(p+"name", argIndex, perElem(c.path, "name"))
		list(p+"image", argIndex, images(c.path, false))
		list(p+"image.repository", argIndex, images(c.path, true))
		list(p+"args", argIndex, perElemFlat(c.path, "args"))
		list(p+"command", argIndex, perElemFlat(c.path, "command"))
		list(p+"privileged", argIndex, perElem(c.path, "securityContext", "privileged"))
		list(p+"allow_privilege_escalation", argIndex, perElem(c.path, "securityContext", "allowPrivilegeEscalation"))
		list(p+"read_only_fs", argIndex, perElem(c.path, "securityContext", "readOnlyRootFilesystem"))
		list(p+"run_as_user", argIndex, perElem(c.path, "securityContext", "runAsUser"))
		list(p+"run_as_group", argIndex, perElem(c.path, "securityContext", "runAsGroup"))
		list(p+"eff_run_as_user", argIndex, effective(c.path, pPodRunAsUser, "runAsUser"))
		list(p+"eff_run_as_group", argIndex, effective(c.path, pPodRunAsGroup, "runAsGroup"))
		list(p+"proc_mount", argIndex, perElem(c.path, "securityContext", "procMount"))
		list(p+"add_capabilities", argIndex, perElemFlat(c.path, "securityContext", "capabilities", "add"))
		if c.name != "ephemeralContainers" { // ephemeral containers may not declare ports
			list(p+"host_port", argIndex, hostPorts(c.path))
		}
	}

	for _, prefix := range []string{"json.", "jevt."} {
		strArg(prefix+"value", argPointer, jsonValue)
		str(prefix+"obj", jsonObject)
		str(prefix+"rawtime", rawTime)
	}
	str("jevt.time", clockTime)
	str("jevt.time.iso8601", isoTime)
	// evt.* fields are the rule engine's own (they only need TimeNanos).
}
