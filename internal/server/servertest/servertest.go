// Package servertest runs a real `haven server` in-process on a loopback
// port, for the tests of the packages around it (the CLI, the client,
// upgrades): one way to start and stop it, so that a server's Run or
// Close error fails every such test alike.
package servertest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/haven-dr/haven/internal/server"
)

// Running is a server serving its API on Addr (host:port).
type Running struct {
	*server.Server
	Addr string
	// Stop ends Run and closes the server; idempotent, and run at the
	// test's end.
	Stop func()
}

// Start builds a server from cfg and serves it until the test ends; a
// nil o.Logger is a silent one.
func Start(t testing.TB, cfg *server.Config, o server.Options) *Running {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := server.New(context.Background(), cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	stop := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	t.Cleanup(stop)
	return &Running{Server: s, Addr: ln.Addr().String(), Stop: stop}
}
