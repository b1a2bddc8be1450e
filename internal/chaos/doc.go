// Package chaos is saker's chaos suite (issue 9): each test starts bin/saker processes
// against local sinks (and, for the external JetStream scenarios, a nats-server it starts
// itself), injects one failure (an output failing, hanging or throttling, kill -9, a full
// spool, a NATS restart) and asserts on counts: every event that got a 200 is delivered at
// least once, duplicates are counted, never a loss.
//
// The short form runs in `make test` (a few seconds per scenario); `make chaos` runs the long
// form (SAKER_CHAOS=long: the durations and counts of the issue) and prints one result row per
// scenario, the table of docs/reliability.md. The package has only tests.
package chaos
