package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/host/hostapi"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/testenv/hostrig"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/overlay"
)

// recoveryHost is one `haven host` process in a namespace of its own.
type recoveryHost = hostrig.Host

// hostRig is three recovery hosts (hostrig) sharing one vault, host a
// designated for the recovery network's uplink, and a route from the
// control namespace (which stands for the outside) into the recovery
// network through it.
type hostRig struct {
	*hostrig.Rig
	base  string
	vault []string // flags naming the vault every host prepares disks from
}

// serverDisks stands for the orchestrator's disk directory: paths under
// it travel relative and land in each host's own.
const serverDisks = "/var/lib/haven/server/disks"

func newHostRig(t *testing.T) *hostRig { return newHostRigOf(t, "a", "b", "c") }

// newHostRigOf is a rig of the hosts named.
func newHostRigOf(t *testing.T, names ...string) *hostRig {
	testenv.RequireRoot(t)
	testenv.LookPath(t, "mkfs.ext4")
	base := t.TempDir()
	vaultDir, pw := filepath.Join(base, "vault"), filepath.Join(base, "vault.pw")
	if err := os.WriteFile(pw, []byte("host-rig-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &hostRig{base: base, vault: []string{"--vault", "file://" + vaultDir, "--password-file", pw}}
	mustHaven(t, nil, append([]string{"vault", "init"}, r.vault...)...)
	r.Rig = hostrig.New(t, hostrig.Options{Bin: havenBin, Env: baseEnv(), Base: base, Net: [3]byte{10, 77, 0},
		DiskDir: serverDisks, Sites: []string{"rec", "tst", orchestrator.SiteTest},
		Config: func(name string) string {
			return fmt.Sprintf("vault: file://%s\npassword_file: %s\n", vaultDir, pw) + edgeOf(name)
		}}, names...)
	err := (vnet.Netlink{}).AddRoute(r.Ctl, netip.MustParsePrefix("10.50.0.0/24"), netip.MustParseAddr("10.77.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// edgeOf designates host a for the uplink: its underlay interface, in
// its own namespace, stands for the host's uplink here.
func edgeOf(host string) string {
	if host == "a" {
		return "edge: \"@eth0\"\n"
	}
	return ""
}

// epoch is the HA leader epoch the test's orders carry.
const epoch = 5

// TestHostsOverlay: three `haven host` processes, each in its own
// namespace and state directory, driven through hostapi.Client. Sites
// with a recovery network (and a test network of the same subnet) are
// made on all three and joined by the VXLAN overlay, with the uplink on
// host A only (reached from outside through it); host B prepares a
// machine's disk from a vault point; machines on hosts A and B of the
// recovery network reach each other by HTTP, test machines
// reach each other but no recovery machine (and back); a deposed
// leader's order is refused by a remote host with 409; a host restarted
// keeps its machines and re-ensures its site (and an overlay device
// deleted by hand); removing the sites and stopping the hosts leaves
// nothing.
func TestHostsOverlay(t *testing.T) {
	r := newHostRig(t)
	if nss, links, procs := r.Leftovers(); len(nss)+len(links) > 0 || len(procs) != 3 {
		t.Fatalf("before: namespaces %v, links %v, processes %v (want the 3 hosts)", nss, links, procs)
	}
	o := &overlayRun{r: r, ctx: fence.WithEpoch(context.Background(), epoch), nets: map[string][]vnet.Network{}}
	o.ensureSites(t)
	a, b := r.Hosts[0], r.Hosts[1]
	o.recA = r.machine(t, o.ctx, a, "rec", "hvra", "10.50.0.11/24")
	o.recB = r.restored(t, o.ctx, b, "rec", "hvrb", "10.50.0.12/24")
	o.tstA = r.machine(t, o.ctx, a, "tst", "hvta", "10.50.0.21/24")
	o.tstB = r.machine(t, o.ctx, b, "tst", "hvtb", "10.50.0.22/24")
	// The outside reaches a recovery machine through A's edge; the test
	// network has no uplink anywhere.
	if body, err := getFrom(r.Ctl, "10.50.0.11"); err != nil || !strings.Contains(body, "hello from hvra") {
		t.Fatalf("through the edge on A: %q %v", body, err)
	}
	o.reach(t, a, "rec", o.recA, "10.50.0.12", true) // A to B over the overlay
	o.reach(t, b, "rec", o.recB, "10.50.0.11", true)
	o.reach(t, a, "tst", o.tstA, "10.50.0.22", true) // the test network spans hosts too
	o.reach(t, a, "tst", o.tstA, "10.50.0.12", false)
	o.reach(t, b, "rec", o.recB, "10.50.0.21", false)
	o.reach(t, b, "rec", o.recB, "10.50.0.22", false)
	o.staleRefused(t)
	o.restart(t)
	o.teardown(t)
}

// overlayRun is TestHostsOverlay's state between its phases.
type overlayRun struct {
	r                      *hostRig
	ctx                    context.Context
	nets                   map[string][]vnet.Network
	recA, recB, tstA, tstB machine.Spec
}

// ensureSites makes sites rec and tst on every host with their overlays,
// the uplink on A only, and checks the devices.
func (o *overlayRun) ensureSites(t *testing.T) {
	// The test network copies the recovery network's subnet, as a drill
	// does, under a name of its own.
	for site, name := range map[string]string{"rec": "lan", "tst": "tlan"} {
		o.nets[site] = []vnet.Network{{Name: name, Subnet: netip.MustParsePrefix("10.50.0.0/24"), Gateway: netip.MustParseAddr("10.50.0.1")}}
	}
	var peers []netip.Addr
	for _, h := range o.r.Hosts {
		peers = append(peers, h.Addr)
	}
	ov := map[string]host.Overlay{}
	for _, site := range []string{"rec", "tst"} {
		n := o.nets[site][0].Name
		ov[site] = host.Overlay{Networks: []overlay.Network{{Name: n, VNI: overlay.DefaultVNI(site, n)}}, Peers: peers}
		for _, h := range o.r.Hosts {
			if err := h.C.EnsureSite(o.ctx, site, o.nets[site], uplink(site, h)); err != nil {
				t.Fatalf("ensure site %s on %s: %v", site, h.Name, err)
			}
			if err := h.C.EnsureOverlay(o.ctx, site, ov[site]); err != nil {
				t.Fatalf("overlay of %s on %s: %v", site, h.Name, err)
			}
		}
	}
	vni := ov["rec"].Networks[0].VNI
	if vni == ov["tst"].Networks[0].VNI {
		t.Fatal("recovery and test network share a VNI")
	}
	for _, h := range o.r.Hosts {
		devs, err := overlay.Devices(h.C.SiteNS("rec"))
		if err != nil {
			t.Fatal(err)
		}
		want := slices.DeleteFunc(slices.Clone(peers), func(p netip.Addr) bool { return p == h.Addr })
		if d := devs["vx-lan"]; d.VNI != vni || !sameAddrs(d.Peers, want) {
			t.Fatalf("host %s: vx-lan %+v, want vni %d peers %v", h.Name, d, vni, want)
		}
	}
	if err := o.r.Hosts[1].C.EnsureSite(o.ctx, "edge", o.nets["rec"], "@eth0"); err == nil || !strings.Contains(err.Error(), "has none") {
		t.Fatalf("a site with an uplink on a host without edge: %v", err)
	}
}

// reach asks machine from (on h's site) to fetch http://to/.
func (o *overlayRun) reach(t *testing.T, h *recoveryHost, site string, from machine.Spec, to string, want bool) {
	t.Helper()
	body, err := fetchVia(h.C.SiteNS(site), from, to)
	switch {
	case want && (err != nil || !strings.Contains(body, "hello from")):
		t.Fatalf("%s -> %s: %q, %v; want an answer", from.Name, to, body, err)
	case !want && err == nil:
		t.Fatalf("%s -> %s answered %q: the networks are not isolated", from.Name, to, body)
	}
}

// staleRefused: a deposed leader's order does nothing on a remote host.
func (o *overlayRun) staleRefused(t *testing.T) {
	c := o.r.Hosts[2]
	spec := o.r.spec(t, c, "rec", "hvstale", "10.50.0.31/24")
	err := c.C.StartMachine(fence.WithEpoch(context.Background(), epoch-1), "rec", "ns", spec)
	var re *hostapi.RemoteError
	if !errors.Is(err, fence.ErrStale) || !errors.As(err, &re) || re.Status != http.StatusConflict {
		t.Fatalf("order of epoch %d after %d: %v", epoch-1, epoch, err)
	}
	if ok, err := c.C.CheckRunning(o.ctx, "rec", spec.Name); ok || err != nil {
		t.Fatalf("refused machine running %v (%v)", ok, err)
	}
}

// restart: a restarted host keeps its machines; re-ensuring its site
// gives back an overlay device deleted meanwhile.
func (o *overlayRun) restart(t *testing.T) {
	a, b := o.r.Hosts[0], o.r.Hosts[1]
	a.Stop()
	if err := (vnet.Netlink{}).DelLink(a.C.SiteNS("rec"), "vx-lan"); err != nil {
		t.Fatal(err)
	}
	o.r.Start(t, a)
	if !a.C.Running("rec", o.recA.Name) {
		t.Fatal("machine on A stopped with its haven host")
	}
	o.reach(t, a, "rec", o.recA, "10.50.0.12", false) // the device is gone
	if err := a.C.EnsureSite(o.ctx, "rec", o.nets["rec"], uplink("rec", a)); err != nil {
		t.Fatal(err)
	}
	if err := a.C.StartMachine(o.ctx, "rec", "ns", o.recA); err != nil {
		t.Fatal(err)
	}
	o.reach(t, a, "rec", o.recA, "10.50.0.12", true)
	o.reach(t, b, "rec", o.recB, "10.50.0.11", true)
}

// teardown stops the machines and removes the sites through the hosts,
// stops the hosts, and finds nothing left (the kernel deletes a
// namespace's links asynchronously: they may take a moment).
func (o *overlayRun) teardown(t *testing.T) {
	a, b := o.r.Hosts[0], o.r.Hosts[1]
	for _, m := range []struct {
		h    *recoveryHost
		site string
		s    machine.Spec
	}{{a, "rec", o.recA}, {b, "rec", o.recB}, {a, "tst", o.tstA}, {b, "tst", o.tstB}} {
		if err := m.h.C.StopMachine(o.ctx, m.site, m.s.Name); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range o.r.Hosts {
		for _, s := range []string{"rec", "tst"} {
			if err := h.C.RemoveSite(o.ctx, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, h := range o.r.Hosts {
		h.Stop()
	}
	var nss, links, procs []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		if nss, links, procs = o.r.Leftovers(); len(nss)+len(links)+len(procs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: namespaces %v, links %v, processes %v", nss, links, procs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// uplink is the edge argument of EnsureSite: the recovery site wants an
// uplink on the host designated for it (A); the test site nowhere.
func uplink(site string, h *recoveryHost) string {
	if site == "rec" && h.Name == "a" {
		return "uplink"
	}
	return ""
}

// getFrom GETs http://addr/ from namespace ns.
func getFrom(ns, addr string) (string, error) {
	c := machine.HTTPClient(ns)
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func sameAddrs(a, b []netip.Addr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, netip.Addr.Compare)
	slices.SortFunc(b, netip.Addr.Compare)
	return slices.Equal(a, b)
}

// spec is an ns machine whose disk is in host h's disk directory, named
// by the server's path for it.
func (r *hostRig) spec(t *testing.T, h *recoveryHost, site, name, addr string) machine.Spec {
	t.Helper()
	if err := os.Rename(machinetest.Image(t), filepath.Join(h.Dir, "disks", name+".img")); err != nil {
		t.Fatal(err)
	}
	return r.specAt(site, name, addr)
}

func (r *hostRig) specAt(site, name, addr string) machine.Spec {
	return machine.Spec{Name: name, Disks: []machine.Disk{{Name: "root", Path: filepath.Join(serverDisks, name+".img")}},
		NICs:   []vnet.NIC{{Name: "eth0", Network: map[string]string{"rec": "lan", "tst": "tlan"}[site], Addr: netip.MustParsePrefix(addr)}},
		Health: machine.HealthCheck{HTTPPort: 80, HTTPPath: "/"}, StopTimeout: 5 * time.Second}
}

// machine starts an ns machine on h through the API and waits (on the
// host) until it serves.
func (r *hostRig) machine(t *testing.T, ctx context.Context, h *recoveryHost, site, name, addr string) machine.Spec {
	t.Helper()
	spec := r.spec(t, h, site, name, addr)
	r.boot(t, ctx, h, site, spec)
	return spec
}

func (r *hostRig) boot(t *testing.T, ctx context.Context, h *recoveryHost, site string, spec machine.Spec) {
	t.Helper()
	name := spec.Name
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := h.C.StartMachine(cctx, site, "ns", spec); err != nil {
		t.Fatalf("start %s on %s: %v\n%s", name, h.Name, err, testenv.TailFile(filepath.Join(h.Dir, "host.log")))
	}
	if err := h.C.WaitHealthy(cctx, site, spec); err != nil {
		t.Fatalf("%s on %s: %v", name, h.Name, err)
	}
}

// restored starts an ns machine whose disk host h prepared from a point
// (a whole restore, then the same call again finds it done).
func (r *hostRig) restored(t *testing.T, ctx context.Context, h *recoveryHost, site, name, addr string) machine.Spec {
	t.Helper()
	mustHaven(t, nil, append([]string{"snapshot", "--machine", name, "--disk", "root=" + machinetest.Image(t)}, r.vault...)...)
	var points []struct{ ID, Machine string }
	if err := json.Unmarshal([]byte(mustHaven(t, nil, append([]string{"vault", "points", "--json", "--machine", name}, r.vault...)...)), &points); err != nil || len(points) != 1 {
		t.Fatalf("points of %s: %v %+v", name, err, points)
	}
	req := host.DiskRequest{Machine: name, Disk: "root", Point: points[0].ID, Target: filepath.Join(serverDisks, name+".img")}
	for _, want := range []string{"restore", "existing"} {
		res, err := h.C.PrepareDisk(ctx, req)
		if err != nil || res.Method != want || res.Size == 0 {
			t.Fatalf("prepare %s on %s: %+v %v, want %s", name, h.Name, res, err, want)
		}
	}
	spec := r.specAt(site, name, addr)
	r.boot(t, ctx, h, site, spec)
	return spec
}

// fetchVia asks machine from (reached from namespace ns) to GET http://to/.
func fetchVia(ns string, from machine.Spec, to string) (string, error) {
	c := machine.HTTPClient(ns)
	c.Timeout = 5 * time.Second
	addr, _ := from.Addr()
	resp, err := c.Get("http://" + addr.String() + "/fetch?addr=" + to)
	if err != nil {
		return "", fmt.Errorf("reaching %s itself: %w", from.Name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s", resp.Status)
	}
	return string(b), nil
}

// TestHostBadConfig: a config `haven host` cannot use is a usage error
// (exit 2) naming the problem, before anything is made.
func TestHostBadConfig(t *testing.T) {
	dir := t.TempDir()
	for body, want := range map[string]string{
		"state_dir: " + dir + "\ntoken_file: " + dir + "/t\ntls: {dir: " + dir + "}\nlisten_on: x\n":       "listen_on",
		"token_file: " + dir + "/t\ntls: {dir: " + dir + "}\n":                                             "state_dir is required",
		"state_dir: " + dir + "\ntoken_file: " + dir + "/t\ntls: {dir: " + dir + "}\noverlay: {port: 1}\n": "underlay local address",
	} {
		cfg := filepath.Join(dir, "host.yaml")
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		r := haven(t, nil, "host", "--config", cfg)
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Fatalf("config %q: exit %d, %s", body, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "t")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused config made the token file: %v", err)
	}
}
