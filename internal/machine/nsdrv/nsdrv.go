// Package nsdrv is the ns machine driver, Haven's embedded default: a
// machine is its root disk image on a loop device, mounted in a new mount
// namespace, with the disk's own init run as PID 1 of new PID, UTS, IPC and
// network namespaces after pivot_root. Writes land in the image.
package nsdrv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
	"golang.org/x/sys/unix"
)

// DefaultStateDir holds one directory per running machine.
const DefaultStateDir = "/run/haven/ns"

// DefaultLogDir keeps console logs after machines stop.
const DefaultLogDir = "/var/log/haven/machines"

// Driver starts machines as namespaces.
type Driver struct {
	Networks   machine.Networks
	Ops        vnet.Ops       // default vnet.Netlink{}
	StateDir   string         // default DefaultStateDir
	StopSignal syscall.Signal // default SIGRTMIN+3 when the init is systemd, else SIGTERM
}

var _ machine.Driver = (*Driver)(nil)

func (d *Driver) Name() string { return "ns" }

// SetStateDir moves the driver's state (tests keep theirs apart).
func (d *Driver) SetStateDir(dir string) { d.StateDir = dir }

func (d *Driver) ops() vnet.Ops {
	if d.Ops == nil {
		return vnet.Netlink{}
	}
	return d.Ops
}

func (d *Driver) stateDir() string {
	if d.StateDir == "" {
		return DefaultStateDir
	}
	return d.StateDir
}

// Start boots spec and returns once its init runs with its NICs in place.
func (d *Driver) Start(ctx context.Context, spec machine.Spec) (machine.Instance, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	atts, err := d.attachments(spec)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(d.stateDir(), spec.Name)
	if err := machine.ClaimStateDir(dir, "root"); err != nil {
		return nil, err
	}
	m, err := d.boot(spec, dir, atts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("ns: start %s: %w", spec.Name, err)
	}
	return m, nil
}

func (d *Driver) attachments(spec machine.Spec) ([]vnet.Attachment, error) {
	var out []vnet.Attachment
	for _, n := range spec.NICs {
		if d.Networks == nil {
			return nil, fmt.Errorf("%w: driver has no networks for NIC %s", machine.ErrBadSpec, n.Name)
		}
		a, err := d.Networks.Attachment(n.Network)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func (d *Driver) boot(spec machine.Spec, dir string, atts []vnet.Attachment) (*instance, error) {
	seed, err := d.writeSeed(spec, dir)
	if err != nil {
		return nil, err
	}
	ds, err := attachDisks(spec)
	if err != nil {
		return nil, err
	}
	m, err := d.spawn(spec, dir, ds, seed)
	ds.close() // spawn closes them once the child runs; this covers its early failures
	if err != nil {
		return nil, err
	}
	if m.limits, err = applyLimits(spec, m); err != nil {
		m.kill()
		return nil, err
	}
	if err := d.plugNICs(m, atts); err != nil {
		m.kill()
		return nil, err
	}
	m.release()
	return m, nil
}

// LoopName tags a machine's loop device so cleanup can find it.
func LoopName(machineName, disk string) string {
	n := vnet.Prefix + "-" + machineName + "/" + disk
	if len(n) > 63 {
		n = n[:63]
	}
	return n
}

func childConf(spec machine.Spec, dir string, ds disks, console string, cgroup bool, seed string) childConfig {
	sum := sha256.Sum256([]byte("haven-ns\x00" + spec.Name))
	sum[6] = sum[6]&0x0f | 0x40 // a version 4 UUID, stable per machine name
	sum[8] = sum[8]&0x3f | 0x80
	return childConfig{Hostname: spec.Name, Root: filepath.Join(dir, "root"), Init: spec.Init, Disks: ds.mounts,
		Console: console, Cgroup: cgroup, Seed: seed,
		UUID: fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])}
}

func (d *Driver) plugNICs(m *instance, atts []vnet.Attachment) error {
	for i, n := range m.spec.NICs {
		host := hostLink(m.spec.Name, n.Name)
		m.links = append(m.links, [2]string{atts[i].NS, host})
		// One default route, by the first NIC's gateway (as the qemu guest
		// does); the others' subnets are reached by their connected routes.
		err := vnet.Plug(d.ops(), atts[i], host, fmt.Sprintf("pid:%d", m.pid), n, i == 0)
		if errors.Is(err, unix.EEXIST) {
			// The name is this machine's and NIC's alone, so the link is a
			// dead instance's: one killed without its cleanup, whose
			// namespace the kernel tears down asynchronously (seconds under
			// load; a failback's restart of a SIGKILLed primary met it).
			// The caller's run lock says no other instance runs.
			if derr := d.ops().DelLink(atts[i].NS, host); derr != nil {
				return fmt.Errorf("NIC %s: %w (and removing the stale link: %v)", n.Name, err, derr)
			}
			err = vnet.Plug(d.ops(), atts[i], host, fmt.Sprintf("pid:%d", m.pid), n, i == 0)
		}
		if err != nil {
			return fmt.Errorf("NIC %s: %w", n.Name, err)
		}
	}
	return nil
}

// hostLink names the bridge side of a NIC's veth: "hv" plus a hash, unique
// per machine and NIC, within the 15 bytes Linux allows.
func hostLink(machineName, nic string) string {
	sum := sha256.Sum256([]byte(machineName + "\x00" + nic))
	return vnet.Prefix + hex.EncodeToString(sum[:6])
}

func openConsole(spec machine.Spec, dir string) (*os.File, string, error) {
	path := spec.ConsoleLog
	if path == "" {
		path = filepath.Join(DefaultLogDir, spec.Name+".console.log")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, "", err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	return f, path, err
}

func encodeConf(cfg childConfig) string {
	b, _ := json.Marshal(cfg)
	return string(b)
}

// readStatus waits for the child to report its root ready, and returns
// what it said after "ok" ("systemd" when that is the init).
func readStatus(r io.Reader) (string, error) {
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	s := string(b)
	if s == "ok" || strings.HasPrefix(s, "ok ") {
		return strings.TrimPrefix(strings.TrimPrefix(s, "ok"), " "), nil
	}
	if s == "" {
		s = "child exited before reporting"
	}
	return "", errors.New(strings.TrimPrefix(s, "error: "))
}
