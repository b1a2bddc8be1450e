package event

import (
	"bytes"
	"testing"
)

const benchEvent = `{"output":"16:31:56.746609046: Error File below a known binary directory opened for writing (user=root command=touch /bin/hack file=/bin/hack)","hostname":"localhost","priority":"Error","rule":"Write below binary dir","time":"2019-05-17T15:31:56.746609046Z","output_fields":{"evt.time":1507591916746609046,"fd.name":"/bin/hack","proc.cmdline":"touch /bin/hack","user.name":"root"}}`

// BenchmarkDecode is the cost of the general decoder, for bodies DecodeBytes leaves to it.
func BenchmarkDecode(b *testing.B) {
	body := []byte(benchEvent)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSON is the cost of the one encoding every output shares.
func BenchmarkJSON(b *testing.B) {
	ev, err := Decode(bytes.NewReader([]byte(benchEvent)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e := ev.Clone()
		_ = e.JSON()
	}
}

// BenchmarkDecodeBytes is the HTTP input's per-event parsing and validation cost.
func BenchmarkDecodeBytes(b *testing.B) {
	body := []byte(benchEvent)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBytes(body); err != nil {
			b.Fatal(err)
		}
	}
}
