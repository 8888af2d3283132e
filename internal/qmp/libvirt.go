package qmp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
)

// DefaultLibvirtSocket is the system libvirtd's (or virtqemud's) socket.
const DefaultLibvirtSocket = "/run/libvirt/libvirt-sock"

// ErrNotRunning says a libvirt domain is defined but not running.
var ErrNotRunning = errors.New("qmp: libvirt domain not running")

// Libvirt is the monitor of a running libvirt domain. libvirt holds the
// domain's only QMP connection, so commands go through libvirtd
// (virDomainQemuMonitorCommand, as `virsh qemu-monitor-command` does);
// libvirt marks the domain tainted "custom-monitor", and its own view of
// the block devices does not include what Haven adds and removes again
// within a cycle.
type Libvirt struct {
	l   *libvirt.Libvirt
	dom libvirt.Domain
}

var _ Monitor = (*Libvirt)(nil)

// DialLibvirt connects to libvirtd's socket ("" for the system's) and
// finds domain, which must be running.
func DialLibvirt(ctx context.Context, socket, domain string) (*Libvirt, error) {
	if socket == "" {
		socket = DefaultLibvirtSocket
	}
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	l := libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(socket), dialers.WithLocalTimeout(timeout)))
	if err := l.ConnectToURI(libvirt.QEMUSystem); err != nil {
		return nil, fmt.Errorf("qmp: libvirt %s: %w", socket, err)
	}
	m := &Libvirt{l: l}
	err := m.call(ctx, func() error {
		dom, err := l.DomainLookupByName(domain)
		if err != nil {
			return err
		}
		st, _, err := l.DomainGetState(dom, 0)
		if err == nil && libvirt.DomainState(st) != libvirt.DomainRunning && libvirt.DomainState(st) != libvirt.DomainPaused {
			err = ErrNotRunning
		}
		m.dom = dom
		return err
	})
	if err != nil {
		l.Disconnect()
		return nil, fmt.Errorf("qmp: libvirt domain %s: %w", domain, err)
	}
	return m, nil
}

// Execute runs cmd through libvirtd's QMP pass-through.
func (m *Libvirt) Execute(ctx context.Context, cmd string, args, out any) error {
	b, err := json.Marshal(request{cmd, args})
	if err != nil {
		return fmt.Errorf("qmp %s: %w", cmd, err)
	}
	var res string
	err = m.call(ctx, func() (err error) {
		res, err = m.l.QEMUDomainMonitorCommand(m.dom, string(b), 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("qmp %s: %w", cmd, err)
	}
	var resp response
	if err := json.Unmarshal([]byte(res), &resp); err != nil {
		return fmt.Errorf("qmp %s: %w: %v in %.80q", cmd, ErrProtocol, err, res)
	}
	return resp.decode(cmd, out)
}

// call runs fn, bounded by ctx (DefaultTimeout without a deadline): the
// RPC library takes no context, so a libvirtd that stops answering is cut
// off by closing the connection, which ends the monitor.
func (m *Libvirt) call(ctx context.Context, fn func() error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		m.l.Disconnect()
		<-done
		return ctx.Err()
	}
}

// Close ends the connection to libvirtd.
func (m *Libvirt) Close() error { return m.l.Disconnect() }
