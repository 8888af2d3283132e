package vnet

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// Recorder is a fake Ops that records every call as one line of text, so
// unit tests can compare the exact host changes a topology makes.
type Recorder struct {
	mu    sync.Mutex
	Calls []string
	// Fail, when set, makes the call whose text it returns true for fail.
	Fail func(call string) bool
}

func (r *Recorder) rec(format string, args ...any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := fmt.Sprintf(format, args...)
	r.Calls = append(r.Calls, c)
	if r.Fail != nil && r.Fail(c) {
		return fmt.Errorf("recorder: injected failure: %s", c)
	}
	return nil
}

func (r *Recorder) AddNS(name string) error         { return r.rec("addns %s", name) }
func (r *Recorder) DelNS(name string) error         { return r.rec("delns %s", name) }
func (r *Recorder) AddBridge(ns, name string) error { return r.rec("bridge %s/%s", ns, name) }
func (r *Recorder) DelLink(ns, name string) error   { return r.rec("dellink %s/%s", ns, name) }
func (r *Recorder) LinkUp(ns, link string) error    { return r.rec("up %s/%s", ns, link) }
func (r *Recorder) SetMaster(ns, l, b string) error { return r.rec("master %s/%s %s", ns, l, b) }
func (r *Recorder) SetForwarding(ns string, on bool) error {
	return r.rec("forward %s %v", ns, on)
}

func (r *Recorder) AddVeth(ns, name, peerNS, peer string, mac net.HardwareAddr) error {
	return r.rec("veth %s/%s %s/%s %v", ns, name, peerNS, peer, mac)
}

func (r *Recorder) AddAddr(ns, link string, addr netip.Prefix) error {
	if ns == "" {
		return ErrRootNS
	}
	return r.rec("addr %s/%s %v", ns, link, addr)
}

func (r *Recorder) AddRoute(ns string, dst netip.Prefix, gw netip.Addr) error {
	if ns == "" {
		return ErrRootNS
	}
	return r.rec("route %s %v via %v", ns, dst, gw)
}

func (r *Recorder) Announce(ns, link string, addr netip.Addr) error {
	return r.rec("garp %s/%s %v", ns, link, addr)
}
