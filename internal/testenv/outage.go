package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
)

// OutageProxy forwards a loopback port to a real service and can drop it
// (new connections refused, open ones cut) and bring it back on the same
// port, like a storage service restarting. Stopped in t.Cleanup.
type OutageProxy struct {
	Addr   string // where clients connect: 127.0.0.1:port
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

// NewOutageProxy starts forwarding to target.
func NewOutageProxy(t testing.TB, target string) *OutageProxy {
	t.Helper()
	p := &OutageProxy{target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.Down)
	return p
}

func (p *OutageProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *OutageProxy) forward(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, s)
	p.mu.Unlock()
	go func() { io.Copy(s, c); s.Close() }()
	io.Copy(c, s)
	c.Close()
}

// Down refuses new connections and cuts the open ones.
func (p *OutageProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Up listens again on the same port.
func (p *OutageProxy) Up(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		t.Fatalf("re-listening on %s: %v", p.Addr, err)
	}
	p.serve(ln)
}
