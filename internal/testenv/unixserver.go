package testenv

import (
	"net"
	"path/filepath"
	"testing"
)

// UnixServer accepts one connection on a unix socket in a temp dir and
// hands it to fn: a scripted (or misbehaving) peer for a protocol client's
// tests. It returns the socket path; the listener closes, and fn's end is
// awaited, at cleanup.
func UnixServer(t testing.TB, fn func(net.Conn)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "hv.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fn(c)
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return sock
}
