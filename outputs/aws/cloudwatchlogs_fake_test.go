package aws

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// fakeLogs is a strict stand-in for the CloudWatch Logs API (no emulator runs here): it
// speaks the JSON 1.1 protocol (POST /, X-Amz-Target Logs_20140328.*, Content-Type
// application/x-amz-json-1.1), requires a SigV4 Authorization header for the logs service,
// and checks PutLogEvents as the service does: group and stream exist, 1 to 10,000 events,
// at most 1 MiB counting 26 bytes per event, chronological order, a 24-hour span, events
// 14 days old or 2 hours ahead rejected by index. It answers errors as the service does
// (400 with {"__type", "message"}), ThrottlingException while throttle is positive.
type fakeLogs struct {
	mu       sync.Mutex
	groups   map[string]map[string][]fakeLogEvent // group -> stream -> events
	throttle int
	calls    map[string]int // X-Amz-Target operation -> calls
	problems []string       // protocol violations seen
	now      func() time.Time
}

type fakeLogEvent struct {
	Message   string
	Timestamp int64
}

func newFakeLogs(groups ...string) *fakeLogs {
	f := &fakeLogs{groups: map[string]map[string][]fakeLogEvent{}, calls: map[string]int{}, now: time.Now}
	for _, g := range groups {
		f.groups[g] = map[string][]fakeLogEvent{}
	}
	return f
}

func (f *fakeLogs) fail(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

// violation records a request the real service would refuse as malformed, and refuses it.
func (f *fakeLogs) violation(w http.ResponseWriter, msg string) {
	f.problems = append(f.problems, msg)
	f.fail(w, http.StatusBadRequest, "InvalidParameterException", msg)
}

func (f *fakeLogs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "Logs_20140328.")
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/":
		f.violation(w, fmt.Sprintf("%s %s: the JSON protocol posts to /", r.Method, r.URL.Path))
		return
	case !ok:
		f.violation(w, fmt.Sprintf("X-Amz-Target %q is not Logs_20140328.*", target))
		return
	case r.Header.Get("Content-Type") != "application/x-amz-json-1.1":
		f.violation(w, fmt.Sprintf("Content-Type %q", r.Header.Get("Content-Type")))
		return
	case !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=") ||
		!strings.Contains(r.Header.Get("Authorization"), "/logs/aws4_request") || r.Header.Get("X-Amz-Date") == "":
		f.fail(w, http.StatusBadRequest, "MissingAuthenticationTokenException", "Missing Authentication Token")
		f.problems = append(f.problems, "request not signed with SigV4 for logs")
		return
	}
	f.calls[op]++
	if f.throttle > 0 {
		f.throttle--
		f.fail(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
		return
	}
	var in struct {
		LogGroupName  *string
		LogStreamName *string
		LogEvents     []struct {
			Message   *string
			Timestamp *int64
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if op == "PutLogEvents" || op == "CreateLogStream" {
		if err := dec.Decode(&in); err != nil {
			f.fail(w, http.StatusBadRequest, "SerializationException", err.Error())
			f.problems = append(f.problems, "body: "+err.Error())
			return
		}
		if in.LogGroupName == nil || in.LogStreamName == nil {
			f.violation(w, "logGroupName and logStreamName are required")
			return
		}
	}
	streams, groupOK := f.groups[deref(in.LogGroupName)]
	switch op {
	case "CreateLogStream":
		if !groupOK {
			f.fail(w, http.StatusBadRequest, "ResourceNotFoundException", "The specified log group does not exist.")
			return
		}
		if _, exists := streams[*in.LogStreamName]; exists {
			f.fail(w, http.StatusBadRequest, "ResourceAlreadyExistsException", "The specified log stream already exists")
			return
		}
		streams[*in.LogStreamName] = nil
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte("{}"))
	case "PutLogEvents":
		if !groupOK {
			f.fail(w, http.StatusBadRequest, "ResourceNotFoundException", "The specified log group does not exist.")
			return
		}
		if _, exists := streams[*in.LogStreamName]; !exists {
			f.fail(w, http.StatusBadRequest, "ResourceNotFoundException", "The specified log stream does not exist.")
			return
		}
		f.put(w, streams, *in.LogStreamName, in.LogEvents)
	default:
		f.violation(w, "operation "+op+" not expected from saker")
	}
}

func (f *fakeLogs) put(w http.ResponseWriter, streams map[string][]fakeLogEvent, stream string, evs []struct {
	Message   *string
	Timestamp *int64
}) {
	if len(evs) < 1 || len(evs) > 10000 {
		f.violation(w, fmt.Sprintf("logEvents: %d events, want 1 to 10000", len(evs)))
		return
	}
	size := 0
	for i, e := range evs {
		if e.Message == nil || e.Timestamp == nil || *e.Message == "" {
			f.violation(w, fmt.Sprintf("logEvents.%d: message and timestamp are required", i+1))
			return
		}
		if !utf8.ValidString(*e.Message) {
			f.violation(w, fmt.Sprintf("logEvents.%d: message is not UTF-8", i+1))
			return
		}
		size += len(*e.Message) + 26
		if i > 0 && *e.Timestamp < *evs[i-1].Timestamp {
			f.violation(w, "Log events in a single PutLogEvents request must be in chronological order.")
			return
		}
	}
	if size > 1048576 {
		f.violation(w, fmt.Sprintf("Upload too large: %d bytes exceeds limit of 1048576", size))
		return
	}
	if span := *evs[len(evs)-1].Timestamp - *evs[0].Timestamp; span > (24 * time.Hour).Milliseconds() {
		f.violation(w, "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.")
		return
	}
	now := f.now().UnixMilli()
	tooOld, tooNew := 0, len(evs)
	for i, e := range evs {
		if *e.Timestamp < now-(14*24*time.Hour).Milliseconds() {
			tooOld = i + 1
		}
		if *e.Timestamp > now+(2*time.Hour).Milliseconds() && tooNew == len(evs) {
			tooNew = i
		}
	}
	for _, e := range evs[tooOld:tooNew] {
		streams[stream] = append(streams[stream], fakeLogEvent{*e.Message, *e.Timestamp})
	}
	out := map[string]any{"nextSequenceToken": "49"}
	info := map[string]int{}
	if tooOld > 0 {
		info["tooOldLogEventEndIndex"] = tooOld
	}
	if tooNew < len(evs) {
		info["tooNewLogEventStartIndex"] = tooNew
	}
	if len(info) > 0 {
		out["rejectedLogEventsInfo"] = info
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

// events returns what the stream holds.
func (f *fakeLogs) events(group, stream string) []fakeLogEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeLogEvent(nil), f.groups[group][stream]...)
}

func (f *fakeLogs) violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.problems...)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
