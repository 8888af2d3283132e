package blobopen_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/testenv"
)

// outageProxy forwards a loopback port to a real service and can drop it
// (connections refused, open ones cut) and bring it back on the same port,
// like a storage service restarting.
type outageProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

func newOutageProxy(t *testing.T, target string) *outageProxy {
	p := &outageProxy{target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *outageProxy) serve(ln net.Listener) {
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

func (p *outageProxy) forward(c net.Conn) {
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

// down refuses new connections and cuts the open ones.
func (p *outageProxy) down() {
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

// up listens again on the same port.
func (p *outageProxy) up(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("re-listening on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// TestOutageRecovered: during a storage outage the bare backend reports
// ErrUnavailable, and a Put through Open's retry stack that starts during
// the outage succeeds once the service is back.
func TestOutageRecovered(t *testing.T) {
	endpoint, access, secret := testenv.S3Server(t)
	proxy := newOutageProxy(t, endpoint)
	raw := fmt.Sprintf("s3://hvoutage?endpoint=%s&insecure=true", proxy.addr)
	e := env(map[string]string{"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret})
	lim := blob.Limits{Retries: 20, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	ctx := context.Background()
	b, err := blobopen.OpenEnv(ctx, raw, lim, e)
	if err != nil {
		t.Fatal(err)
	}
	bare, _ := blobopen.OpenEnv(ctx, raw, blob.Limits{}, e)
	if err := b.Put(ctx, "before", []byte("1")); err != nil {
		t.Fatalf("Put before the outage: %v", err)
	}

	proxy.down()
	if _, err := bare.Stat(ctx, "before"); !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("Stat during outage = %v, want ErrUnavailable", err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Put(ctx, "during", []byte("2")) }()
	time.Sleep(300 * time.Millisecond) // let some attempts fail; the check below does not depend on it
	proxy.up(t)
	if err := <-done; err != nil {
		t.Fatalf("Put across the outage: %v", err)
	}
	if got, err := b.Get(ctx, "during", 0, -1); err != nil || string(got) != "2" {
		t.Fatalf("Get after the outage = %q, %v", got, err)
	}
}
