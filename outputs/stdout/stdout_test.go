package stdout

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/event"
)

func TestJSONLines(t *testing.T) {
	var buf bytes.Buffer
	s := New(&buf)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := &event.Event{Rule: "r <x>", Priority: event.Notice, Time: time.Unix(1, 0).UTC(), OutputFields: map[string]any{"n": i}}
			if err := s.Send(context.Background(), ev); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	sc := bufio.NewScanner(&buf)
	lines := 0
	for sc.Scan() {
		lines++
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m["rule"] != "r <x>" {
			t.Errorf("line %q: %v", sc.Text(), err)
		}
	}
	if lines != 20 {
		t.Errorf("%d lines", lines)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestWriteError(t *testing.T) {
	err := New(failWriter{}).Send(context.Background(), &event.Event{Rule: "r"})
	if err == nil || err.Error() != "stdout: broken pipe" {
		t.Errorf("err = %v", err)
	}
}

func TestConfig(t *testing.T) {
	for v, ok := range map[string]bool{"auto": true, "true": true, "false": true, "yes": false} {
		c := &Config{Enabled: v}
		if (c.Validate() == nil) != ok {
			t.Errorf("%q: %v", v, c.Validate())
		}
	}
	if !defaults().Auto() || (&Config{Enabled: "true"}).Auto() {
		t.Error("Auto")
	}
}
