//go:build unix

package tcpout

import (
	"errors"
	"net"
	"syscall"
)

// alive reports whether the receiver has not closed conn, by peeking at the socket without
// blocking: nothing to read means open; end of stream or an error means gone. (A read with
// an expired deadline cannot tell: Go returns the timeout before asking the kernel.) The
// receivers of these protocols never write, so a byte waiting to be read also means the
// connection is not what it should be.
func alive(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	err = raw.Read(func(fd uintptr) bool {
		var one [1]byte
		_, _, rerr := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK)
		return true // never wait for the socket to become readable
	})
	return err == nil && open
}
