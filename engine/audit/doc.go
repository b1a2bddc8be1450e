// Package audit is saker's Kubernetes audit event source (Falco's k8s_audit): it parses
// audit.k8s.io Events, EventLists and arrays of them, extracts the fields of Falco's
// k8saudit plugin (ka.*) and json plugin (json.*, jevt.*) for the rule engine
// (engine/rules), and feeds events from three places:
//
//   - Handler, the kube-apiserver audit webhook (POST /k8s-audit);
//   - Replayer, offline JSONL audit logs (saker replay);
//   - Follower, growing log files followed like tail -F (k8saudit.files).
//
// Events are never decoded into maps. A Parser validates a payload in one pass and records
// where the values of the event's top-level members, and of their members, lie in the raw
// bytes; a field then walks only the spans it needs, its result is cached for the event,
// and the Event with its buffers is reused for the next one. Field values follow the
// plugins exactly: strings are decoded, any other JSON value is its compact text in the
// original key order and number spelling, a missing value or an empty list is "not
// available".
package audit
