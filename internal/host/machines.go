package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/libvirtdrv"
	"github.com/haven-dr/haven/internal/machine/nsdrv"
	"github.com/haven-dr/haven/internal/machine/qemudrv"
)

func (h *Local) driver(site, kind string, spec machine.Spec) (machine.Driver, error) {
	d, err := NewDriver(kind, h, filepath.Join(h.dir, "machines", site, kind), h.QEMUBoot, spec)
	if lv, ok := d.(*libvirtdrv.Driver); ok {
		lv.Site = site // domain names are host-wide; machine names repeat across sites
		lv.Socket = h.LibvirtSocket
	}
	return d, err
}

// NewDriver is the driver of kind for spec, with its state in dir. A qemu
// machine booting its own firmware needs no boot files; one booting
// Haven's kernel does.
func NewDriver(kind string, nets machine.Networks, dir string, boot *qemudrv.BootFiles, spec machine.Spec) (machine.Driver, error) {
	switch kind {
	case "ns", "":
		return &nsdrv.Driver{Networks: nets, StateDir: dir}, nil
	case "qemu":
		d := &qemudrv.Driver{Networks: nets, StateDir: dir, Accel: "auto"}
		if boot != nil {
			d.Boot = *boot
		} else if spec.Firmware == "" {
			return nil, fmt.Errorf("%w: %s: the qemu driver boots Haven's kernel only with boot files; set firmware: bios or uefi to boot the disk's own", machine.ErrBadSpec, spec.Name)
		}
		return d, nil
	case "libvirt":
		return &libvirtdrv.Driver{Networks: nets, StateDir: dir}, nil
	}
	return nil, fmt.Errorf("%w: driver %q", machine.ErrBadSpec, kind)
}

func key(site, name string) string { return site + "/" + name }

func (h *Local) StartMachine(ctx context.Context, site, kind string, spec machine.Spec) error {
	if err := h.epoch.Check(ctx); err != nil {
		return err
	}
	kind = h.vmKind(kind, spec)
	// libvirt runs its domains apart from Haven already: no runner needed.
	if h.Exec != "" && kind != "libvirt" {
		if err := spec.Validate(); err != nil {
			return err
		}
		if _, err := h.driver(site, kind, spec); err != nil {
			return err
		}
		return h.startDetached(ctx, site, kind, spec)
	}
	if kind == "libvirt" {
		// A domain a previous process started runs on: take it over.
		if _, err := h.adoptDomains(site); err != nil {
			return err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.instances[key(site, spec.Name)]; m != nil && alive(m) {
		return nil
	}
	d, err := h.driver(site, kind, spec)
	if err != nil {
		return err
	}
	// A machine of a previous server process died with it (the drivers
	// kill machines whose parent dies); its state is a leftover.
	if err := h.clearLeftover(site, kind, spec.Name); err != nil {
		return err
	}
	if kind == "libvirt" {
		if err := spec.Validate(); err != nil { // the record holds the defaults (stop timeout, MACs)
			return err
		}
		if err := h.recordDomain(site, spec); err != nil {
			return err
		}
	}
	m, err := d.Start(ctx, spec)
	if err != nil {
		return err
	}
	h.instances[key(site, spec.Name)] = m
	return nil
}

func alive(m machine.Instance) bool {
	select {
	case <-m.Done():
		return false
	default:
		return m.State() != machine.Stopped
	}
}

func (h *Local) clearLeftover(site, kind, name string) error {
	return ClearLeftover(kind, filepath.Join(h.dir, "machines", site, kind), name)
}

// ClearLeftover removes the driver state a dead runner of machine name
// left in stateDir; call it only while holding the machine's run lock.
func ClearLeftover(kind, stateDir, name string) error {
	if _, err := os.Stat(filepath.Join(stateDir, name)); errors.Is(err, os.ErrNotExist) || kind == "libvirt" {
		return nil // the libvirt driver clears its own (taps, seed, definition)
	}
	if kind == "qemu" {
		return clearLeftoverQEMU(stateDir, name)
	}
	return clearLeftoverDir(stateDir, name)
}

// clearLeftoverDir removes the ns driver state of a machine whose process
// is gone. Cleanup kills a recorded process only if its start time
// matches, so a reused pid is never hit. Loop devices autoclear.
func clearLeftoverDir(dir, name string) error {
	if _, err := os.Stat(filepath.Join(dir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	tmp, err := os.MkdirTemp(dir, ".hvleft")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Rename(filepath.Join(dir, name), filepath.Join(tmp, name)); err != nil {
		return err
	}
	_, err = nsdrv.Cleanup(tmp, "\x00none")
	return err
}

func clearLeftoverQEMU(dir, name string) error {
	tmp, err := os.MkdirTemp(dir, ".hvleft")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Rename(filepath.Join(dir, name), filepath.Join(tmp, name)); err != nil {
		return err
	}
	_, err = qemudrv.Cleanup(tmp)
	return err
}

func (h *Local) StopMachine(ctx context.Context, site, name string) error {
	if err := h.epoch.Check(ctx); err != nil {
		return err
	}
	return h.stopMachine(ctx, site, name)
}

// stopMachine is StopMachine past the epoch check, for what this process
// stops of its own (its site's removal, its shutdown).
func (h *Local) stopMachine(ctx context.Context, site, name string) error {
	if h.Exec != "" {
		if err := h.stopDetached(ctx, site, name); err != nil {
			return err
		}
	}
	if err := h.adoptDomain(site, name); err != nil {
		return err // not stopped: the record stays for the next try
	}
	h.mu.Lock()
	m := h.instances[key(site, name)]
	delete(h.instances, key(site, name))
	h.mu.Unlock()
	if m != nil {
		if err := m.Stop(ctx); err != nil && (alive(m) || libvirtdrv.Domain(m) != "") {
			if libvirtdrv.Domain(m) != "" {
				h.mu.Lock()
				h.instances[key(site, name)] = m // its domain may still be defined: try again
				h.mu.Unlock()
			}
			return fmt.Errorf("host: stop %s: %w", name, err)
		}
	}
	if err := h.forgetDomain(site, name); err != nil {
		return err
	}
	for _, kind := range []string{"ns", "qemu"} {
		if err := h.clearLeftover(site, kind, name); err != nil {
			return err
		}
	}
	return nil
}

// stopSiteMachines stops every machine of site; it fails only for libvirt
// domains it could not stop (they are libvirtd's, and would run on).
func (h *Local) stopSiteMachines(ctx context.Context, site string) error {
	h.mu.Lock()
	var names []string
	for k := range h.instances {
		if s, n, _ := cut(k); s == site {
			names = append(names, n)
		}
	}
	h.mu.Unlock()
	if h.Exec != "" {
		names = append(names, h.detachedNames(site)...)
	}
	domains := h.domainNames(site)
	names = append(names, domains...)
	var errs []error
	for _, n := range names {
		if err := h.stopMachine(ctx, site, n); err != nil && slices.Contains(domains, n) {
			errs = append(errs, err)
		}
	}
	for _, kind := range []string{"ns", "qemu"} {
		ents, _ := os.ReadDir(filepath.Join(h.dir, "machines", site, kind))
		for _, e := range ents {
			if e.IsDir() && e.Name()[0] != '.' {
				h.clearLeftover(site, kind, e.Name())
			}
		}
	}
	return errors.Join(errs...)
}

func cut(k string) (string, string, bool) { return strings.Cut(k, "/") }

// siteMachines lists the machines that run on site now.
func (h *Local) siteMachines(site string) []string {
	names, _ := h.adoptDomains(site) // unknown: taken as running
	h.mu.Lock()
	for k, m := range h.instances {
		if s, n, _ := cut(k); s == site && alive(m) && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	h.mu.Unlock()
	if h.Exec != "" {
		for _, n := range h.detachedNames(site) {
			if h.alive(site, n) && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return names
}

func (h *Local) Running(site, name string) bool {
	if h.Exec != "" && h.alive(site, name) {
		return true
	}
	if err := h.adoptDomain(site, name); err != nil {
		return true // libvirtd does not answer: unknown is not stopped
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.instances[key(site, name)]
	return m != nil && alive(m)
}

// WaitHealthy also says when the machine went over its memory limit: a
// machine that fails its health check for want of memory is reported as
// such, not as merely unhealthy.
func (h *Local) WaitHealthy(ctx context.Context, site string, spec machine.Spec) error {
	err := machine.WaitHealthy(ctx, h.SiteNS(site), spec)
	h.mu.Lock()
	m := h.instances[key(site, spec.Name)]
	h.mu.Unlock()
	if r, ok := m.(machine.MemoryReporter); ok && err != nil {
		if st, merr := r.Memory(); merr == nil && st.Err() != nil {
			return errors.Join(err, st.Err())
		}
	}
	return err
}

// Close stops every machine this host runs (server shutdown), except
// libvirt domains: they run in libvirtd, and the next process adopts them.
func (h *Local) Close(ctx context.Context) {
	h.mu.Lock()
	var keys []string
	for k, m := range h.instances {
		if libvirtdrv.Domain(m) == "" {
			keys = append(keys, k)
		}
	}
	h.mu.Unlock()
	for _, k := range keys {
		s, n, _ := cut(k)
		h.stopMachine(ctx, s, n)
	}
}
