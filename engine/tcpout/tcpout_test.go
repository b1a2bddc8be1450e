package tcpout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/saker-dev/saker/internal/testpeers"
)

func write(t *testing.T, c *Client, line string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Write(ctx, []byte(line+"\n"))
}

// TestReconnectsAfterReceiverRestart: a receiver that closed the idle connection (a
// restart) gets the next line on a new connection; nothing is written into the dead one.
func TestReconnectsAfterReceiverRestart(t *testing.T) {
	s := testpeers.StartLineServer(t, nil)
	c := New(s.Addr(), nil)
	defer c.Close()
	if err := write(t, c, "one"); err != nil {
		t.Fatal(err)
	}
	testpeers.Eventually(t, 5*time.Second, func() bool { return len(s.Lines()) == 1 }, "first line not received")
	s.Stop()
	if err := write(t, c, "lost?"); err == nil {
		t.Fatal("a write with the receiver down succeeded")
	}
	s.Start(t)
	for i := range 3 {
		if err := write(t, c, fmt.Sprintf("after-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	testpeers.Eventually(t, 5*time.Second, func() bool { return len(s.Lines()) == 4 }, "lines after the restart: %q", s.Lines())
	if got := strings.Join(s.Lines(), ","); got != "one,after-0,after-1,after-2" {
		t.Errorf("lines %s", got)
	}
}

// TestHungReceiverTimesOut: a receiver that stops reading fills the socket buffers; the
// write fails at its deadline instead of blocking, and the connection is dropped.
func TestHungReceiverTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(10 * time.Second) // never reads
		}
	}()
	c := New(l.Addr().String(), nil)
	defer c.Close()
	big := make([]byte, 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var werr error
	for range 64 {
		if werr = c.Write(ctx, big); werr != nil {
			break
		}
	}
	if !errors.Is(werr, context.DeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", werr)
	}
}

func TestUnreachableFails(t *testing.T) {
	c := New(net.JoinHostPort("127.0.0.1", fmt.Sprint(testpeers.FreePort(t))), nil)
	if err := write(t, c, "x"); err == nil || !strings.Contains(err.Error(), "connect to 127.0.0.1") {
		t.Fatalf("want a connect error, got %v", err)
	}
}
