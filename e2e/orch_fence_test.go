package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/vnet"
)

// holdProxy is a loopback HTTP proxy in front of a real receiver (the
// agent's control API, haven dns's API). Armed, it holds the first
// request of one route from one leader epoch, tells the test it arrived
// (so the test can freeze the leader right then) and passes it on only
// when released: the receiver then sees a deposed leader's order at the
// moment the leader wakes.
type holdProxy struct {
	t      *testing.T
	url    string
	target string
	hc     *http.Client
	mu     sync.Mutex
	armed  *hold
}

type hold struct {
	method, path, epoch string
	arrived, release    chan struct{}
	result              chan heldResult
}

type heldResult struct {
	status int
	body   string
	err    error
}

// newHoldProxy listens on loopback (inside ns when set) and forwards to
// target, dialled from ns too.
func newHoldProxy(t *testing.T, ns, target string) *holdProxy {
	var ln net.Listener
	listen := func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return err }
	var err error
	if ns != "" {
		err = vnet.Do(ns, listen)
	} else {
		err = listen()
	}
	if err != nil {
		t.Fatal(err)
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if ns != "" {
			return vnet.DialContext(ctx, ns, network, addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	p := &holdProxy{t: t, url: "http://" + ln.Addr().String(), target: target,
		hc: &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}}
	srv := &http.Server{Handler: p}
	go srv.Serve(ln)
	t.Cleanup(func() {
		p.mu.Lock()
		if h := p.armed; h != nil {
			p.armed = nil
			close(h.release)
		}
		p.mu.Unlock()
		srv.Close()
	})
	return p
}

// arm holds the next `method path` request of epoch.
func (p *holdProxy) arm(method, path string, epoch int64) *hold {
	h := &hold{method: method, path: path, epoch: fmt.Sprint(epoch), arrived: make(chan struct{}),
		release: make(chan struct{}), result: make(chan heldResult, 1)}
	p.mu.Lock()
	p.armed = h
	p.mu.Unlock()
	return h
}

func (p *holdProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	h := p.armed
	held := h != nil && r.Method == h.method && r.URL.Path == h.path && r.Header.Get(fence.Header) == h.epoch
	if held {
		p.armed = nil
	}
	p.mu.Unlock()
	if held {
		close(h.arrived)
		<-h.release
	}
	// Not the caller's context: the held caller may be frozen or gone
	// by the time its order reaches the receiver.
	req, _ := http.NewRequestWithContext(context.Background(), r.Method, "http://"+p.target+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := p.hc.Do(req)
	var res heldResult
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res = heldResult{status: resp.StatusCode, body: string(b)}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
	} else {
		res = heldResult{err: err, status: http.StatusBadGateway}
	}
	if held {
		h.result <- res
	}
	w.WriteHeader(res.status)
	io.WriteString(w, res.body)
}

// fenceRound is one side effect at which the leader is frozen.
type fenceRound struct {
	name         string
	proxy        *holdProxy
	method, path string
	setup        func(via int) // brings the plan where the job can run
	submit       string        // the job held at the side effect
	reverse      func(via int) // undoes the job under the new leader
	check        func() error  // the world as reverse left it
	cleanup      func(via int) // back to protected
	params       api.Params    // of submit
}

// TestHAFrozenLeaderRefusedByReceivers freezes the leader (SIGSTOP) right
// when one of its orders reaches a real receiver (held by a proxy), lets
// the follower take over, finish the job and undo it, then delivers the
// deposed leader's order: the receiver refuses it (409, stale epoch) and
// the world stays as the new leader left it. One round per kind of order:
// a DNS endpoint change, an agent's stop, snapshot and start (failover
// and its cancel), and a failback's restore. The host's orders run in
// the leader's process, where no proxy can hold them: they are covered
// by internal/host and internal/server tests.
func TestHAFrozenLeaderRefusedByReceivers(t *testing.T) {
	s := newDRSite(t)
	p := newHAPair(t, s)
	ctx := context.Background()
	agentProxy := newHoldProxy(t, "", fmt.Sprintf("127.0.0.1:%d", s.agentPort))
	dnsProxy := newHoldProxy(t, s.inet, "127.0.0.1:8053")
	doc := s.protection()
	doc = strings.Replace(doc, fmt.Sprintf("http://127.0.0.1:%d", s.agentPort), agentProxy.url, 1)
	doc = strings.Replace(doc, "http://127.0.0.1:8053", dnsProxy.url, 1)
	s.applyDoc(doc)
	s.waitPoints(1)

	run := func(via int, typ string, prm api.Params) {
		t.Helper()
		j, err := p.clients[via].Submit(ctx, "shop", typ, prm)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if end, err := p.clients[via].Watch(ctx, j.ID, nil); err != nil || end.State != api.JobSucceeded {
			t.Fatalf("%s: %+v %v\n%s", typ, end, err, s.log(p.name(via)))
		}
	}
	cancel := func(via int) { run(via, string(orchestrator.CancelFailover), api.Params{}) }
	planned := func(via int) { run(via, string(orchestrator.PlannedFailover), api.Params{}) }
	// The primary web machine serves (its start hook returns before its
	// server listens: a stale stop would keep it from ever serving).
	webServes := func() error {
		var err error
		for range 60 {
			if _, err = s.http(s.inet, "GET", "http://10.1.0.20/", ""); err == nil {
				return nil
			}
			time.Sleep(500 * time.Millisecond)
		}
		return err
	}
	dbDown := func() error {
		for range 3 {
			dctx, stop := context.WithTimeout(ctx, time.Second)
			c, err := vnet.DialContext(dctx, s.inet, "tcp", "10.1.0.10:80")
			stop()
			if err == nil {
				c.Close()
				return fmt.Errorf("primary db answers on port 80 after the stale start")
			}
			time.Sleep(500 * time.Millisecond)
		}
		return nil
	}
	rounds := []fenceRound{
		{name: "dns endpoint change", proxy: dnsProxy, method: http.MethodPatch,
			path: "/v1/profiles/" + shopName + "/endpoints/primary", submit: string(orchestrator.UnplannedFailover),
			params: api.Params{Force: true}, reverse: cancel,
			check: func() error { return s.expectDNS("10.1.0.20") }},
		{name: "agent stop", proxy: agentProxy, method: http.MethodPost, path: "/v1/machines/web/stop",
			submit: string(orchestrator.PlannedFailover), reverse: cancel, check: webServes},
		{name: "agent snapshot", proxy: agentProxy, method: http.MethodPost, path: "/v1/machines/db/snapshot",
			submit: string(orchestrator.PlannedFailover), reverse: cancel, check: webServes},
		{name: "agent start", proxy: agentProxy, method: http.MethodPost, path: "/v1/machines/db/start",
			setup: planned, submit: string(orchestrator.CancelFailover), reverse: planned, check: dbDown, cleanup: cancel},
		// Failback: the new leader restored and started the primary; the
		// old leader's restore must not write over the running primary.
		{name: "agent restore (failback)", proxy: agentProxy, method: http.MethodPost, path: "/v1/machines/db/restore",
			setup: func(via int) {
				planned(via)
				run(via, string(orchestrator.Commit), api.Params{})
				run(via, string(orchestrator.Reprotect), api.Params{})
			}, submit: string(orchestrator.Failback), check: func() error {
				if err := webServes(); err != nil {
					return err
				}
				return s.expectDNS("10.1.0.20")
			}},
	}
	for _, r := range rounds {
		p.frozenAt(t, r)
	}
}

// frozenAt runs one round (see TestHAFrozenLeaderRefusedByReceivers).
func (p *haPair) frozenAt(t *testing.T, r fenceRound) {
	s, ctx := p.s, context.Background()
	ldr, _, err := p.leader()
	if err != nil {
		t.Fatal(err)
	}
	if r.setup != nil {
		r.setup(1 - ldr)
	}
	// The leader the order is held from is the one after the setup.
	ldr, epoch, err := p.leader()
	if err != nil {
		t.Fatal(err)
	}
	fol := 1 - ldr
	h := r.proxy.arm(r.method, r.path, epoch)
	j, err := p.clients[fol].Submit(ctx, "shop", r.submit, r.params)
	if err != nil {
		t.Fatalf("%s: submit: %v", r.name, err)
	}
	select {
	case <-h.arrived:
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s: the leader's order never came\n%s", r.name, s.log(p.name(ldr)))
	}
	cmd := s.procs[p.name(ldr)]
	syscall.Kill(cmd.Process.Pid, syscall.SIGSTOP)
	frozen := true
	defer func() {
		if frozen {
			syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
		}
	}()
	if e := p.eventuallyLeader(fol, 4*haLease); e <= epoch {
		t.Fatalf("%s: epoch %d after takeover, was %d", r.name, e, epoch)
	}
	end, err := p.clients[fol].Watch(ctx, j.ID, nil)
	if err != nil || end.State != api.JobSucceeded {
		t.Fatalf("%s: job under the new leader: %+v %v\n%s", r.name, end, err, s.log(p.name(fol)))
	}
	if r.reverse != nil {
		r.reverse(fol)
	}

	close(h.release) // the deposed leader's order reaches the receiver now
	var res heldResult
	select {
	case res = <-h.result:
	case <-time.After(time.Minute):
		t.Fatalf("%s: no answer to the held order", r.name)
	}
	if res.err != nil || res.status != http.StatusConflict || !strings.Contains(res.body, fmt.Sprintf("stale leader epoch %d <", epoch)) {
		t.Fatalf("%s: the receiver answered the deposed leader's order %d %q (%v), want 409 stale leader epoch", r.name, res.status, res.body, res.err)
	}
	if err := r.check(); err != nil {
		t.Fatalf("%s: after the stale order: %v", r.name, err)
	}

	syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
	frozen = false
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		delete(s.procs, p.name(ldr))
	case <-time.After(4 * haLease):
		t.Fatalf("%s: deposed leader still runs after resuming:\n%s", r.name, s.log(p.name(ldr)))
	}
	if err := r.check(); err != nil {
		t.Fatalf("%s: after the deposed leader woke: %v", r.name, err)
	}
	if r.cleanup != nil {
		r.cleanup(fol)
	}
	p.start(ldr) // back as a follower
	t.Logf("%s: refused %q", r.name, res.body)
}
