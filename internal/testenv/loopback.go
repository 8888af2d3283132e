package testenv

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// LoopbackListeners opens one TCP listener on each loopback host (127.0.0.x)
// all on the same free port, for endpoints that share a monitor port. They
// are closed in t.Cleanup.
func LoopbackListeners(t testing.TB, hosts ...string) ([]net.Listener, int) {
	t.Helper()
	for range 50 {
		ls, port, err := tryShared(hosts)
		if err == nil {
			t.Cleanup(func() { closeAll(ls) })
			return ls, port
		}
	}
	t.Fatalf("no port free on all of %v", hosts)
	return nil, 0
}

func tryShared(hosts []string) ([]net.Listener, int, error) {
	first, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
	if err != nil {
		return nil, 0, err
	}
	ls := []net.Listener{first}
	port := first.Addr().(*net.TCPAddr).Port
	for _, h := range hosts[1:] {
		l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
		if err != nil {
			closeAll(ls)
			return nil, 0, err
		}
		ls = append(ls, l)
	}
	return ls, port, nil
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		l.Close()
	}
}

// HTTPEndpoint is a real HTTP server on a loopback address that a test can
// stop and start again on the same address, to play a failing site.
type HTTPEndpoint struct {
	t       testing.TB
	addr    string
	handler http.Handler
	mu      sync.Mutex
	srv     *http.Server
}

// NewHTTPEndpoint serves h on l until Stop or the end of the test.
func NewHTTPEndpoint(t testing.TB, l net.Listener, h http.Handler) *HTTPEndpoint {
	e := &HTTPEndpoint{t: t, addr: l.Addr().String(), handler: h}
	e.serve(l)
	t.Cleanup(e.Stop)
	return e
}

func (e *HTTPEndpoint) serve(l net.Listener) {
	srv := &http.Server{Handler: e.handler, ReadHeaderTimeout: 5 * time.Second}
	e.mu.Lock()
	e.srv = srv
	e.mu.Unlock()
	go func() {
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			e.t.Logf("http endpoint %s: %v", e.addr, err)
		}
	}()
}

// Addr is host:port.
func (e *HTTPEndpoint) Addr() string { return e.addr }

// Stop closes the listener and every connection: the site is down.
func (e *HTTPEndpoint) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		e.srv.Close()
		e.srv = nil
	}
}

// Start listens again on the same address.
func (e *HTTPEndpoint) Start() {
	e.t.Helper()
	var l net.Listener
	var err error
	for range 50 {
		if l, err = net.Listen("tcp", e.addr); err == nil {
			e.serve(l)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("restart %s: %v", e.addr, err)
}
