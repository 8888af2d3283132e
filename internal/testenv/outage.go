package testenv

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// StorageOutage is a directory on its own tmpfs that a test can make
// refuse every write (remounted read-only: the kernel answers EROFS) and
// accept them again, like a file vault's disk failing and coming back.
// Reads keep working. Needs root; unmounted in t.Cleanup.
type StorageOutage struct {
	Dir string
	t   testing.TB
}

// NewStorageOutage mounts a fresh tmpfs of sizeMB under a test directory.
func NewStorageOutage(t testing.TB, sizeMB int) *StorageOutage {
	t.Helper()
	RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "hv"+strings.ToLower(rand.Text()[:8]))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0700", sizeMB), "tmpfs", dir)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			exec.Command("umount", "-l", dir).Run() // a busy mount must not outlive the test
			t.Logf("umount %s: %v %s", dir, err, out)
		}
	})
	return &StorageOutage{Dir: dir, t: t}
}

// Down makes every write under Dir fail.
func (s *StorageOutage) Down() { s.t.Helper(); run(s.t, "mount", "-o", "remount,ro", s.Dir) }

// Up accepts writes again.
func (s *StorageOutage) Up() { s.t.Helper(); run(s.t, "mount", "-o", "remount,rw", s.Dir) }
