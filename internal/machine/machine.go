// Package machine defines how Haven boots a recovery machine from restored
// raw disk images and stops it again: a plain Spec the orchestrator fills,
// and one small Driver interface implemented by the ns driver (namespaces,
// the embedded default), the qemu driver (a real VM) and the libvirt
// driver (a libvirt domain). One conformance suite (machinetest) runs
// against the ns and qemu drivers.
package machine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/vnet"
)

// Sentinel errors.
var (
	ErrBadSpec    = errors.New("machine: bad spec")
	ErrNotRunning = errors.New("machine: not running")
	ErrUnhealthy  = errors.New("machine: health check did not pass")
)

// Disk is one raw disk image. The first disk is the root filesystem.
type Disk struct {
	Name   string `json:"name" yaml:"name"`
	Path   string `json:"path" yaml:"path"`                         // raw image file
	FSType string `json:"fstype,omitempty" yaml:"fstype,omitempty"` // ns driver; default: found by superblock
	Mount  string `json:"mount,omitempty" yaml:"mount,omitempty"`   // ns driver, non-root disks
	// Format is the qemu driver's image format: raw or qcow2; "" tells it
	// by the header. Restored disks are raw and say so: a guest could have
	// written a qcow2 header into its own first sector.
	Format string `json:"format,omitempty" yaml:"format,omitempty"`
	// Partition is the partition (1-based) the ns driver mounts from a
	// disk with a partition table; 0 lets the driver find it (for the
	// root disk, the partition holding the init).
	Partition int `json:"partition,omitempty" yaml:"partition,omitempty"`
}

// HealthCheck says how to tell the machine is serving: a TCP connect, or an
// HTTP GET answered 2xx, on the first NIC's address.
type HealthCheck struct {
	TCPPort  int    `json:"tcp_port,omitempty" yaml:"tcp_port,omitempty"`
	HTTPPort int    `json:"http_port,omitempty" yaml:"http_port,omitempty"`
	HTTPPath string `json:"http_path,omitempty" yaml:"http_path,omitempty"`
}

// Spec is everything a driver needs to boot one machine.
type Spec struct {
	Name  string     `json:"name" yaml:"name"`
	Disks []Disk     `json:"disks" yaml:"disks"`
	NICs  []vnet.NIC `json:"nics" yaml:"nics"`
	// MemoryMB and CPUs size a VM (qemu: default 256, or 1024 booting
	// firmware; libvirt: default 1024; one CPU) and are the ns driver's
	// cgroup limits (0: none).
	MemoryMB int         `json:"memory_mb,omitempty" yaml:"memory_mb,omitempty"`
	CPUs     int         `json:"cpus,omitempty" yaml:"cpus,omitempty"`
	Init     string      `json:"init,omitempty" yaml:"init,omitempty"` // default /sbin/init
	Health   HealthCheck `json:"health" yaml:"health"`
	// Firmware is how the qemu driver boots: "" boots Haven's own kernel
	// and initramfs with the root disk mounted whole (images without a
	// bootloader); "bios" (SeaBIOS) or "uefi" (OVMF) boot the disk through
	// its own bootloader and kernel, as a real VM disk expects.
	Firmware string `json:"firmware,omitempty" yaml:"firmware,omitempty"`
	// Readdress says the NIC addresses differ from those the disk's own
	// OS configuration holds (the recovery site uses another subnet). The
	// driver then hands the guest a cloud-init NoCloud seed with a
	// network-config v2 for these NICs, matched by MAC, as clouds do; when
	// false the guest's own configuration is left untouched.
	Readdress bool `json:"readdress,omitempty" yaml:"readdress,omitempty"`
	// StopTimeout is how long a graceful stop may take before the
	// machine is killed; default 10s.
	StopTimeout time.Duration `json:"stop_timeout,omitempty" yaml:"stop_timeout,omitempty"`
	// ConsoleLog is where console output goes; default in the driver's
	// state directory.
	ConsoleLog string `json:"console_log,omitempty" yaml:"console_log,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// Validate checks the parts every driver relies on and fills defaults.
func (s *Spec) Validate() error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("%w: name %q", ErrBadSpec, s.Name)
	}
	if len(s.Disks) == 0 {
		return fmt.Errorf("%w: %s has no disks", ErrBadSpec, s.Name)
	}
	for i, n := range s.NICs {
		if n.Name == "" || n.Network == "" || !n.Addr.IsValid() {
			return fmt.Errorf("%w: %s NIC %d needs name, network and address", ErrBadSpec, s.Name, i)
		}
		if n.MAC == nil {
			s.NICs[i].MAC = vnet.StableMAC(s.Name, n.Name)
		}
	}
	switch s.Firmware {
	case "", "bios", "uefi":
	default:
		return fmt.Errorf("%w: %s firmware %q: want bios or uefi", ErrBadSpec, s.Name, s.Firmware)
	}
	for _, d := range s.Disks {
		if d.Format != "" && d.Format != "raw" && d.Format != "qcow2" {
			return fmt.Errorf("%w: %s disk %s format %q: want raw or qcow2", ErrBadSpec, s.Name, d.Name, d.Format)
		}
		if d.Partition < 0 || d.Partition > 128 {
			return fmt.Errorf("%w: %s disk %s partition %d", ErrBadSpec, s.Name, d.Name, d.Partition)
		}
	}
	if s.Init == "" {
		s.Init = "/sbin/init"
	}
	if s.StopTimeout == 0 {
		s.StopTimeout = 10 * time.Second
	}
	return nil
}

// Addr is the machine's first NIC address, where health checks go.
func (s Spec) Addr() (netip.Addr, error) {
	if len(s.NICs) == 0 {
		return netip.Addr{}, fmt.Errorf("%w: %s has no NIC", ErrBadSpec, s.Name)
	}
	return s.NICs[0].Addr.Addr(), nil
}

// State is a machine's life-cycle state.
type State string

const (
	Starting State = "starting"
	Running  State = "running"
	Stopping State = "stopping"
	Stopped  State = "stopped"
)

// Networks tells a driver where a NIC's network is; *vnet.Lab implements it.
type Networks interface {
	Attachment(network string) (vnet.Attachment, error)
}

// Driver boots machines.
type Driver interface {
	// Start boots the machine and returns once it is running (not
	// necessarily healthy: see WaitHealthy).
	Start(ctx context.Context, spec Spec) (Instance, error)
	Name() string
}

// Instance is one running machine.
type Instance interface {
	Spec() Spec
	State() State
	// Stop shuts down gracefully, kills after Spec.StopTimeout, and
	// returns once every host resource of the machine is released. It is
	// idempotent: on a stopped machine, or one whose links or network are
	// already gone, it returns nil, so callers may retry it.
	Stop(ctx context.Context) error
	// Done is closed when the machine has stopped by itself or by Stop.
	Done() <-chan struct{}
	// ConsoleLog is the path of the console output.
	ConsoleLog() string
}

// Status holds an instance's State for its driver. Once Stopped it stays
// Stopped, so a late Running from a start path cannot resurrect it.
type Status struct {
	mu    sync.Mutex
	state State
}

// Set records s unless the instance has already stopped.
func (st *Status) Set(s State) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.state != Stopped {
		st.state = s
	}
}

// Get returns the current state.
func (st *Status) Get() State {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.state
}
