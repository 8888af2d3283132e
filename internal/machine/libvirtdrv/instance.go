package libvirtdrv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/digitalocean/go-libvirt"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/nocloud"
	"github.com/haven-dr/haven/internal/vnet"
)

// nic is one NIC's tap and where it goes.
type nic struct{ ns, bridge, tap, mac string }

type instance struct {
	spec    machine.Spec
	domain  string
	d       *Driver
	ops     vnet.Ops
	dir     string // the NoCloud seed
	console string
	nics    []nic
	done    chan struct{}
	watched sync.Once

	status machine.Status
}

var _ machine.Instance = (*instance)(nil)

func (m *instance) Spec() machine.Spec    { return m.spec }
func (m *instance) Done() <-chan struct{} { return m.done }
func (m *instance) ConsoleLog() string    { return m.console }
func (m *instance) State() machine.State  { return m.status.Get() }

// Domain is the libvirt domain name of a machine this driver started.
func Domain(m machine.Instance) string {
	if i, ok := m.(*instance); ok {
		return i.domain
	}
	return ""
}

// TapName is the tap of NIC nicName of domain.
func TapName(domain, nicName string) string {
	sum := sha256.Sum256([]byte("tap\x00" + domain + "\x00" + nicName))
	return vnet.Prefix + hex.EncodeToString(sum[:6])
}

// lookup returns the domain and its state; found is false when libvirt
// does not know it.
func (m *instance) lookup() (dom libvirt.Domain, state libvirt.DomainState, found bool, err error) {
	l, err := m.d.client()
	if err != nil {
		return dom, 0, false, err
	}
	dom, err = l.DomainLookupByName(m.domain)
	if libvirt.IsNotFound(err) {
		return dom, 0, false, nil
	}
	if err != nil {
		return dom, 0, false, fmt.Errorf("libvirt: %s: %w", m.domain, err)
	}
	st, _, err := l.DomainGetState(dom, 0)
	if libvirt.IsNotFound(err) {
		return dom, 0, false, nil
	}
	if err != nil {
		return dom, 0, false, fmt.Errorf("libvirt: %s state: %w", m.domain, err)
	}
	return dom, libvirt.DomainState(st), true, nil
}

func active(s libvirt.DomainState) bool {
	switch s {
	case libvirt.DomainRunning, libvirt.DomainBlocked, libvirt.DomainPaused, libvirt.DomainPmsuspended:
		return true
	}
	return false
}

// running reports whether the domain runs with its NICs on the bridges,
// to be left alone. A domain still holding a tap in the root namespace is
// one whose start was cut short (Haven died between create and resume):
// it is destroyed, to be booted afresh.
func (m *instance) running() (bool, error) {
	dom, st, found, err := m.lookup()
	if err != nil || !found || !active(st) {
		return false, err
	}
	for _, n := range m.nics {
		if _, err := net.InterfaceByName(n.tap); err == nil {
			l, err := m.d.client()
			if err == nil {
				err = l.DomainDestroyFlags(dom, libvirt.DomainDestroyDefault)
			}
			return false, err
		}
	}
	m.status.Set(machine.Running)
	return true, nil
}

// watch closes done once the domain is no longer active (shut down by its
// guest, by virsh, or by Stop) or gone.
func (m *instance) watch() {
	m.watched.Do(func() {
		m.d.hold()
		go func() {
			for {
				_, st, found, err := m.lookup()
				if err == nil && (!found || !active(st)) {
					m.status.Set(machine.Stopped)
					close(m.done)
					m.d.release()
					return
				}
				time.Sleep(250 * time.Millisecond)
			}
		}()
	})
}

// writeSeed writes spec's NoCloud seed when it is re-addressed and returns
// its path ("" for none).
func (d *Driver) writeSeed(m *instance) (string, error) {
	if !m.spec.Readdress {
		return "", nil
	}
	if err := os.MkdirAll(m.dir, 0o755); err != nil {
		return "", err
	}
	docs, err := nocloud.Documents(m.spec, d.Networks)
	if err != nil {
		return "", err
	}
	path := filepath.Join(m.dir, "seed.iso")
	return path, nocloud.WriteImage(path, docs)
}

// createTaps makes each NIC's tap in the root namespace, for libvirt to
// open by name, clearing what an earlier run of the machine left.
func (m *instance) createTaps() error {
	if err := m.removeTaps(); err != nil {
		return err
	}
	for _, n := range m.nics {
		if err := vnet.AddPersistentTap("", n.tap); err != nil {
			return err
		}
	}
	return nil
}

// attachTaps moves the taps QEMU now holds into their site namespaces,
// onto the bridges.
func (m *instance) attachTaps() error {
	for _, n := range m.nics {
		if err := vnet.MoveLink("", n.tap, n.ns); err != nil {
			return err
		}
		if err := m.ops.SetMaster(n.ns, n.tap, n.bridge); err != nil {
			return err
		}
		if err := m.ops.LinkUp(n.ns, n.tap); err != nil {
			return err
		}
	}
	return nil
}

// removeTaps deletes the taps wherever they are (persistent: they outlive
// QEMU).
func (m *instance) removeTaps() error {
	var errs []error
	for _, n := range m.nics {
		errs = append(errs, m.ops.DelLink(n.ns, n.tap), m.ops.DelLink("", n.tap))
	}
	return errors.Join(errs...)
}

// Stop presses the ACPI power button, destroys the domain after the stop
// timeout, and removes it from libvirt (undefine, with its UEFI variable
// store), with its taps and seed. Idempotent: a domain already gone is
// fine.
func (m *instance) Stop(ctx context.Context) error {
	// Held for the whole stop (see Start): the watchers of this domain
	// release the connection as soon as it shuts down, before the undefine.
	m.d.hold()
	defer m.d.release()
	if err := m.shutdown(ctx); err != nil {
		return err
	}
	if err := m.remove(); err != nil {
		return err
	}
	m.watch()
	select {
	case <-m.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	m.status.Set(machine.Stopped)
	return nil
}

func (m *instance) shutdown(ctx context.Context) error {
	dom, st, found, err := m.lookup()
	if err != nil || !found || !active(st) {
		return err
	}
	m.status.Set(machine.Stopping)
	l, err := m.d.client()
	if err != nil {
		return err
	}
	t := time.NewTimer(m.spec.StopTimeout)
	defer t.Stop()
	if err := l.DomainShutdown(dom); err != nil {
		t.Reset(0) // no ACPI (a paused domain): nothing graceful left to try
	}
	for {
		_, st, found, err := m.lookup()
		if err == nil && (!found || !active(st)) {
			return nil
		}
		select {
		case <-t.C:
			return m.destroy(l, dom)
		case <-ctx.Done():
			return m.destroy(l, dom)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (m *instance) destroy(l *libvirt.Libvirt, dom libvirt.Domain) error {
	err := l.DomainDestroyFlags(dom, libvirt.DomainDestroyDefault)
	if err == nil || libvirt.IsNotFound(err) {
		return nil
	}
	if _, st, found, lerr := m.lookup(); lerr == nil && (!found || !active(st)) {
		return nil // it shut down meanwhile
	}
	return fmt.Errorf("libvirt: destroy %s: %w", m.domain, err)
}

// remove undefines the domain (destroying it if it still runs: a failed
// start) and deletes its taps and state.
func (m *instance) remove() error {
	dom, st, found, err := m.lookup()
	if err != nil {
		return err
	}
	if found {
		l, err := m.d.client()
		if err != nil {
			return err
		}
		if active(st) {
			if err := m.destroy(l, dom); err != nil {
				return err
			}
		}
		err = l.DomainUndefineFlags(dom, libvirt.DomainUndefineNvram|libvirt.DomainUndefineManagedSave)
		if err != nil && !libvirt.IsNotFound(err) {
			return fmt.Errorf("libvirt: undefine %s: %w", m.domain, err)
		}
	}
	if err := m.removeTaps(); err != nil {
		return err
	}
	return os.RemoveAll(m.dir)
}
