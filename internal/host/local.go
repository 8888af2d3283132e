package host

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/haven-dr/haven/internal/atomicfile"
	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/qemudrv"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/overlay"
	"github.com/haven-dr/haven/internal/vnet/wg"
)

// Local is the in-process Host: everything happens on this machine.
type Local struct {
	dir   string
	id    string
	ops   vnet.Ops
	vault *vault.Vault
	// QEMUBoot, when set, enables the qemu driver.
	QEMUBoot *qemudrv.BootFiles
	// Exec, when set, is the haven binary: ns machines then run detached
	// in `haven machine run` processes and outlive the server.
	Exec string
	// LibvirtSocket is libvirtd's socket for libvirt machines; default
	// the system's.
	LibvirtSocket string
	// VMDriver "libvirt" runs firmware-booting qemu machines as libvirt
	// domains (VMConfig).
	VMDriver string
	// Tunnels join the recovery site (a site with an uplink) to offices
	// by WireGuard; set before the first EnsureSite.
	Tunnels []wg.Config
	// Underlay, when set, lets sites join other hosts' over a VXLAN
	// overlay (EnsureOverlay); set before the first EnsureSite.
	Underlay *overlay.Underlay

	// epoch is the highest HA leader epoch that gave this host an
	// order: the servers of one machine share the host's directory, so a
	// deposed leader's late order is refused here (package fence).
	epoch *fence.Guard

	pubMu     sync.Mutex // publish records
	mu        sync.Mutex
	instances map[string]machine.Instance // site/name
}

var _ Host = (*Local)(nil)

// NewLocal keeps its state under dir (standby images, prepared disks,
// site records, machine state) and reads points from v. The host's ID is
// made once and kept, so the names of its namespaces survive a restart
// and a resumed job finds what it created.
func NewLocal(dir string, v *vault.Vault, ops vnet.Ops) (*Local, error) {
	if ops == nil {
		ops = vnet.Netlink{}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	id, err := loadID(filepath.Join(dir, "host-id"))
	if err != nil {
		return nil, err
	}
	g, err := fence.Open(filepath.Join(dir, "leader-epoch"))
	if err != nil {
		return nil, err
	}
	h := &Local{dir: dir, id: id, ops: ops, vault: v, epoch: g, instances: map[string]machine.Instance{}}
	h.adopt()
	if err := h.sweep(); err != nil {
		return nil, fmt.Errorf("host: remove what removed sites left: %w", err)
	}
	return h, nil
}

// ID is the host's name prefix ("hv" + 6 hex).
func (h *Local) ID() string { return h.id }

var _ Fencer = (*Local)(nil)

// Fence raises the host's epoch to ctx's (package fence).
func (h *Local) Fence(ctx context.Context) error { return h.epoch.Check(ctx) }

func loadID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if !strings.HasPrefix(id, vnet.Prefix) || len(id) != 8 {
			return "", fmt.Errorf("host: %s: bad host id %q", path, id)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	b = make([]byte, 3)
	rand.Read(b)
	id := vnet.Prefix + hex.EncodeToString(b)
	return id, atomicfile.WriteFile(path, []byte(id+"\n"), 0o600)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600)
}
