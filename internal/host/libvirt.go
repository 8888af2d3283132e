package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/libvirtdrv"
)

// Libvirt domains run in libvirtd, not in a Haven process: they outlive
// the server or `haven host` that started them, like detached machines.
// A record per machine (its spec, written before the domain is defined)
// lets a restarted host take the domain over instead of knowing nothing
// of it: reported running, not booted twice, stopped and undefined by
// the next StopMachine or RemoveSite.

// VMConfig is how a host runs VMs, in `haven host`'s config and in
// server.yaml for the server's own host.
type VMConfig struct {
	// VMDriver runs the plan's qemu machines that boot their own
	// firmware: "qemu" (default) as Haven's own QEMU processes, or
	// "libvirt" as libvirt domains, so they show in virsh, virt-manager
	// and Cockpit. Machines with driver: libvirt are domains anyway.
	VMDriver string `yaml:"vm_driver"`
	// LibvirtSocket is libvirtd's (or virtqemud's) socket; default
	// /run/libvirt/libvirt-sock.
	LibvirtSocket string `yaml:"libvirt_socket"`
}

// Check refuses a VMConfig the host cannot run.
func (c VMConfig) Check() error {
	switch c.VMDriver {
	case "", "qemu", "libvirt":
	default:
		return fmt.Errorf("vm_driver %q: want qemu or libvirt", c.VMDriver)
	}
	if c.LibvirtSocket != "" && !filepath.IsAbs(c.LibvirtSocket) {
		return fmt.Errorf("libvirt_socket %q is not absolute", c.LibvirtSocket)
	}
	return nil
}

// UseVMs applies c to the host; call it before the first machine starts.
func (h *Local) UseVMs(c VMConfig) {
	h.VMDriver, h.LibvirtSocket = c.VMDriver, c.LibvirtSocket
}

// vmKind is the driver that runs a machine of kind here: a firmware-
// booting qemu machine becomes a libvirt domain on a libvirt host. One
// booting Haven's own kernel stays with qemu (libvirt's driver offers
// firmware boot only).
func (h *Local) vmKind(kind string, spec machine.Spec) string {
	if kind == "qemu" && h.VMDriver == "libvirt" && spec.Firmware != "" {
		return "libvirt"
	}
	return kind
}

func (h *Local) domainDir(site string) string {
	return filepath.Join(h.dir, "machines", site, "libvirt")
}

func (h *Local) domainRecord(site, name string) string {
	return filepath.Join(h.domainDir(site), name+".json")
}

// domainNames lists the libvirt machines recorded on site.
func (h *Local) domainNames(site string) []string {
	files, _ := filepath.Glob(filepath.Join(h.domainDir(site), "*.json"))
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	return out
}

// adoptDomains takes over the recorded domains of site this process has
// no instance of (it restarted). A domain that could not be looked at
// (libvirtd does not answer) is named in the error and reads as running:
// unknown must not read as stopped.
func (h *Local) adoptDomains(site string) (unknown []string, err error) {
	var errs []error
	for _, n := range h.domainNames(site) {
		if err := h.adoptDomain(site, n); err != nil {
			unknown = append(unknown, n)
			errs = append(errs, err)
		}
	}
	return unknown, errors.Join(errs...)
}

// adoptDomain takes over machine name's recorded domain, if this process
// has no instance of it.
func (h *Local) adoptDomain(site, name string) error {
	h.mu.Lock()
	_, known := h.instances[key(site, name)]
	h.mu.Unlock()
	if known {
		return nil
	}
	var spec machine.Spec
	if err := readJSON(h.domainRecord(site, name), &spec); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // stopped meanwhile
		}
		return fmt.Errorf("host: libvirt machine %s record: %w", name, err)
	}
	d, err := h.driver(site, "libvirt", spec)
	if err != nil {
		return err
	}
	m, err := d.(*libvirtdrv.Driver).Adopt(spec)
	if err != nil {
		return fmt.Errorf("host: adopt libvirt machine %s: %w", name, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, known := h.instances[key(site, name)]; !known {
		h.instances[key(site, name)] = m
	}
	return nil
}

// recordDomain keeps spec before its domain is defined, so a crash in
// between leaves a record the next process adopts and cleans up.
func (h *Local) recordDomain(site string, spec machine.Spec) error {
	return writeJSON(h.domainRecord(site, spec.Name), spec)
}

// forgetDomain drops the record once the domain is undefined.
func (h *Local) forgetDomain(site, name string) error {
	err := os.Remove(h.domainRecord(site, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
