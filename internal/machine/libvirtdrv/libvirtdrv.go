// Package libvirtdrv is the libvirt machine driver: a recovered machine
// becomes a persistent libvirt domain (firmware boot of its restored
// disks, virtio NICs on the site's bridges, a NoCloud seed when
// re-addressed), defined and driven through libvirt's RPC protocol in pure
// Go, so the admin sees it in virsh, virt-manager and Cockpit.
//
// NICs: libvirt opens a domain's tap by name in its own network
// namespace (the root one), while Haven's bridges live in the site
// namespaces. The driver creates each tap in its own namespace, which
// must be libvirtd's (CheckNetNS), down and with no address, starts the
// domain paused so QEMU holds the tap while the guest cannot send, moves
// the tap into the site namespace onto the bridge, and only then resumes
// the guest. A tap keeps its open files across namespaces, so nothing in
// the root namespace ever carries or reaches lab traffic. A Haven domain
// that stopped cannot be started again from virsh (its tap is no longer
// in the root namespace: libvirt refuses); Haven starts it.
package libvirtdrv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
)

// DefaultSocket is the system libvirtd's (or virtqemud's) socket.
const DefaultSocket = "/run/libvirt/libvirt-sock"

// DefaultStateDir holds one directory per machine (its NoCloud seed).
const DefaultStateDir = "/var/lib/haven/libvirt"

// DefaultLogDir keeps console logs after machines stop.
const DefaultLogDir = "/var/log/haven/machines"

// Driver starts machines as libvirt domains.
type Driver struct {
	Networks machine.Networks
	Ops      vnet.Ops // default vnet.Netlink{}
	// Site names the domains with the machine ("haven-<site>-<machine>"):
	// machine names repeat across sites (the primary's db and its test
	// failover copy) while domain names are host-wide.
	Site     string
	Socket   string // default DefaultSocket
	StateDir string // default DefaultStateDir
	// Accel is "kvm" or "tcg"; "" uses KVM when /dev/kvm exists.
	Accel string

	mu    sync.Mutex
	conn  *libvirt.Libvirt
	users int // instances watching their domain through conn
}

var _ machine.Driver = (*Driver)(nil)

func (d *Driver) Name() string { return "libvirt" }

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

// DomainName is the libvirt domain of machine name on site.
func DomainName(site, name string) string {
	if site == "" {
		return "haven-" + name
	}
	return "haven-" + site + "-" + name
}

func (d *Driver) domainName(spec machine.Spec) string { return DomainName(d.Site, spec.Name) }

// client returns the driver's libvirt connection, dialling again after
// libvirtd restarted (its domains run on meanwhile).
func (d *Driver) client() (*libvirt.Libvirt, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil && d.conn.IsConnected() {
		return d.conn, nil
	}
	sock := d.Socket
	if sock == "" {
		sock = DefaultSocket
	}
	if err := CheckNetNS(sock); err != nil {
		return nil, err
	}
	l := libvirt.NewWithDialer(dialers.NewLocal(dialers.WithSocket(sock), dialers.WithLocalTimeout(5*time.Second)))
	if err := l.ConnectToURI(libvirt.QEMUSystem); err != nil {
		return nil, fmt.Errorf("libvirt: connect %s: %w", sock, err)
	}
	d.conn = l
	return l, nil
}

// Close drops the driver's connection; domains keep running. Instances
// still watching theirs dial again.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.disconnect()
}

func (d *Driver) disconnect() error {
	if d.conn == nil {
		return nil
	}
	err := d.conn.Disconnect()
	d.conn = nil
	return err
}

// hold and release count the users of the connection (instances watching
// their domains, starts and stops under way): the connection goes when the
// last one has (a host makes a driver per machine, and must not keep a
// connection per stopped machine).
func (d *Driver) hold() {
	d.mu.Lock()
	d.users++
	d.mu.Unlock()
}

func (d *Driver) release() {
	d.mu.Lock()
	d.users--
	d.mu.Unlock()
	d.idle()
}

// idle drops the connection when nobody uses it.
func (d *Driver) idle() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.users == 0 {
		d.disconnect()
	}
}

func (d *Driver) accel() string {
	switch d.Accel {
	case "kvm", "tcg":
		return d.Accel
	}
	if _, err := os.Stat("/dev/kvm"); err == nil {
		return "kvm"
	}
	return "tcg"
}

// Start defines and boots spec's domain, or, when the domain already
// runs (a restarted Haven), leaves it alone and returns it.
func (d *Driver) Start(ctx context.Context, spec machine.Spec) (machine.Instance, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Firmware == "" {
		return nil, fmt.Errorf("%w: %s: the libvirt driver boots the disk's own bootloader: set firmware: bios or uefi", machine.ErrBadSpec, spec.Name)
	}
	if d.Networks == nil && len(spec.NICs) > 0 {
		return nil, fmt.Errorf("%w: driver has no networks", machine.ErrBadSpec)
	}
	// Held for the whole start: another instance's watcher seeing its
	// domain go would otherwise drop the shared connection mid-call.
	d.hold()
	defer d.release()
	l, err := d.client()
	if err != nil {
		return nil, err
	}
	m, err := d.newInstance(spec, false)
	if err != nil {
		return nil, err
	}
	if running, err := m.running(); err != nil {
		return nil, err
	} else if running {
		m.watch()
		return m, nil
	}
	if err := d.boot(l, m); err != nil {
		return nil, errors.Join(fmt.Errorf("libvirt: start %s: %w", m.domain, err), m.remove())
	}
	m.watch()
	return m, nil
}

// Adopt returns the instance of spec's domain as it is, without booting
// anything: a restarted Haven takes over a domain it defined earlier, to
// report it running and to stop it. A domain that is not running (or not
// defined at all) gives an instance already Stopped whose Stop removes
// what is left of it (the definition, taps and seed); one whose start was
// cut short is destroyed, as in Start.
func (d *Driver) Adopt(spec machine.Spec) (machine.Instance, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if d.Networks == nil && len(spec.NICs) > 0 {
		return nil, fmt.Errorf("%w: driver has no networks", machine.ErrBadSpec)
	}
	d.hold()
	defer d.release()
	m, err := d.newInstance(spec, true)
	if err != nil {
		return nil, err
	}
	if running, err := m.running(); err != nil {
		return nil, err
	} else if !running {
		m.status.Set(machine.Stopped) // not alive from the start, before the watcher sees it
	}
	m.watch()
	return m, nil
}

// newInstance resolves spec's NICs to taps and bridges. lenient is for a
// domain being adopted: a network whose site is gone took the tap with
// it, and the tap is then only looked for in the root namespace.
func (d *Driver) newInstance(spec machine.Spec, lenient bool) (*instance, error) {
	m := &instance{spec: spec, domain: d.domainName(spec), d: d, ops: d.ops(),
		dir: filepath.Join(d.stateDir(), spec.Name), done: make(chan struct{})}
	m.console = spec.ConsoleLog
	if m.console == "" {
		m.console = filepath.Join(DefaultLogDir, m.domain+".console.log")
	}
	for _, n := range spec.NICs {
		att, err := d.Networks.Attachment(n.Network)
		if err != nil && !lenient {
			return nil, err
		}
		m.nics = append(m.nics, nic{ns: att.NS, bridge: att.Bridge, tap: TapName(m.domain, n.Name), mac: n.MAC.String()})
	}
	return m, nil
}

// boot writes the seed, defines the domain, starts it paused, hands its
// taps to the site's bridges and resumes it.
func (d *Driver) boot(l *libvirt.Libvirt, m *instance) error {
	m.status.Set(machine.Starting)
	formats, err := machine.DiskFormats(m.spec.Disks)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(m.console), 0o755); err != nil {
		return err
	}
	seed, err := d.writeSeed(m)
	if err != nil {
		return err
	}
	xml, err := domainXML(m, d.accel(), formats, seed)
	if err != nil {
		return err
	}
	if err := m.createTaps(); err != nil {
		return err
	}
	dom, err := l.DomainDefineXML(xml)
	if err != nil {
		return fmt.Errorf("define: %w", err)
	}
	if err := l.DomainSetAutostart(dom, 0); err != nil {
		return fmt.Errorf("autostart off: %w", err)
	}
	if _, err := l.DomainCreateWithFlags(dom, uint32(libvirt.DomainStartPaused)); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if err := m.attachTaps(); err != nil {
		return err
	}
	if err := l.DomainResume(dom); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	m.status.Set(machine.Running)
	return nil
}
