package chattest

import (
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/internal/goldens"
	"github.com/saker-dev/saker/outputs"
	"github.com/saker-dev/saker/outputs/internal/chat"
)

// Output builds an output for a test: its defaults changed by each mod (nil ones are
// skipped), checked by its Validate method, then newOutput; an error fails the test.
func Output[C, O any](t testing.TB, defaults func() *C, newOutput func(*C, outputs.Env) (O, error), mods ...func(*C)) O {
	t.Helper()
	c := defaults()
	for _, mod := range mods {
		if mod != nil {
			mod(c)
		}
	}
	if v, ok := any(c).(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	o, err := newOutput(c, outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// Build makes saker's message for an event: a value the chat outputs encode with
// chat.EncodeJSON, or the body already encoded ([]byte).
type Build func(ev *event.Event) (any, error)

// Variants makes the Build of each of falcosidekick's recorded variants: mods are their
// settings (nil: the defaults), and build sets an output up with one.
func Variants[C any](mods map[string]func(*C), build func(mod func(*C)) Build) map[string]Build {
	out := make(map[string]Build, len(mods))
	for variant, mod := range mods {
		out[variant] = build(mod)
	}
	return out
}

// Case is one recorded event of a variant: the event, the body saker made, and it and what
// falcosidekick sent for the same event and settings, decoded.
type Case struct {
	Variant, Name       string
	Event               *event.Event
	Body                []byte
	Ours, Falcosidekick map[string]any
}

// Golden configures Payloads.
type Golden struct {
	// Variants are falcosidekick's recorded settings (testdata/falcosidekick/<variant>) and
	// how saker builds a message under each.
	Variants map[string]Build
	// UUIDs gives each recorded event the uuid uuid-<event> (outputs that send it).
	UUIDs bool
	// Compare is the output's own comparison with what falcosidekick sent.
	Compare func(t *testing.T, c Case)
}

// Payloads checks, for each variant and each recorded event, the body saker makes against
// its golden file, then runs g.Compare. The golden files are testdata/<variant>/<event>.json,
// or testdata/<event>.json for an output recorded in one variant only; go test -update
// rewrites them.
func Payloads(t *testing.T, g Golden) {
	t.Helper()
	var uuid func(string) string
	if g.UUIDs {
		uuid = func(name string) string { return "uuid-" + name }
	}
	evs := goldens.Events(t, uuid)
	for _, variant := range slices.Sorted(maps.Keys(g.Variants)) {
		for _, name := range goldens.Names(evs) {
			t.Run(variant+"/"+name, func(t *testing.T) {
				body := encode(t, g.Variants[variant], evs[name])
				goldens.Check(t, filepath.Join("testdata", dir(g.Variants, variant), name+".json"), goldens.IndentJSON(t, body))
				g.Compare(t, Case{Variant: variant, Name: name, Event: evs[name], Body: body, Ours: Decode(t, body),
					Falcosidekick: Falcosidekick(t, variant, name)})
			})
		}
	}
}

// Suppressed checks, for each variant, the message made for SuppressedEvent with
// CheckSuppressed: text returns the text in which the suppressed line stands.
func Suppressed(t *testing.T, variants map[string]Build, text func(msg any) string) {
	t.Helper()
	ev := SuppressedEvent(t)
	for _, variant := range slices.Sorted(maps.Keys(variants)) {
		t.Run(variant, func(t *testing.T) {
			m, err := variants[variant](ev)
			if err != nil {
				t.Fatal(err)
			}
			CheckSuppressed(t, dir(variants, variant), text(m), m)
		})
	}
}

// dir is the folder of a variant's golden files under testdata: none for an output
// recorded in one variant.
func dir(variants map[string]Build, variant string) string {
	if len(variants) == 1 {
		return ""
	}
	return variant
}

func encode(t testing.TB, build Build, ev *event.Event) []byte {
	t.Helper()
	m, err := build(ev)
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := m.([]byte); ok {
		return b
	}
	b, err := chat.EncodeJSON(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
