package vnet

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on a locked OS thread inside namespace ns. Sockets created by fn
// stay in ns after it returns, which is how the edge probes machines without
// the root namespace ever touching a lab address. If switching back fails,
// the thread is left locked so Go discards it instead of reusing it.
func Do(ns string, fn func() error) error {
	if ns == "" {
		return ErrRootNS
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- doLocked(ns, fn)
	}()
	return <-errc
}

func doLocked(ns string, fn func() error) error {
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("vnet: current netns: %w", err)
	}
	defer orig.Close()
	target, err := openNS(ns)
	if err != nil {
		return fmt.Errorf("vnet: open netns %q: %w", ns, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return fmt.Errorf("vnet: enter netns %q: %w", ns, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err == nil {
		runtime.UnlockOSThread()
	}
	return ferr
}

// DialContext opens a connection from inside namespace ns.
func DialContext(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := Do(ns, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen opens a listener inside namespace ns.
func Listen(ns, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := Do(ns, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}
