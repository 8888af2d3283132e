package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/haven-dr/haven/internal/machine/libvirtdrv"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// TestRealVMLibvirtPlan: a plan's VM fails over as a libvirt domain. The
// server's host has vm_driver: libvirt on the test's private libvirtd;
// the plan's db machine (driver qemu, firmware bios, 2 CPUs, 768 MiB) has
// one point in the vault, `haven snapshot` of the shared Debian image
// (one TCG boot in the test: the recovered one). `haven failover
// unplanned` (no agent: the primary is taken as down) restores it and
// boots it as domain haven-rec-db, re-addressed onto the recovery network
// by cloud-init: virsh lists it running with the spec's size, PostgreSQL
// answers at 10.72.0.10 from the recovery site. The server is restarted
// (SIGTERM: its Close leaves the domain to libvirtd): the domain keeps
// its id, and the new server's `failover cancel` (which stops machines
// only through the host that adopts the domain) undefines it; no domain,
// tap, record or namespace is left.
func TestRealVMLibvirtPlan(t *testing.T) {
	l := newRVLab(t)
	// Before the server exists: libvirtd's private mounts are made once.
	sock := testenv.Libvirtd(t)
	virshBin := testenv.LookPath(t, "virsh")
	virsh := func(args ...string) (string, error) {
		out, err := exec.Command(virshBin, append([]string{"-c", "qemu:///system?socket=" + sock}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	mustVirsh := func(args ...string) string {
		t.Helper()
		out, err := virsh(args...)
		if err != nil {
			t.Fatalf("virsh %v: %v: %s", args, err, out)
		}
		return out
	}
	inet, err := l.lab.AddEdge("inet")
	if err != nil {
		t.Fatal(err)
	}
	dom := libvirtdrv.DomainName(orchestrator.SiteRecovery, "db")
	tap := libvirtdrv.TapName(dom, "eth0")
	t.Cleanup(func() { vnet.Netlink{}.DelLink("", tap) }) // a start cut short leaves it in the root namespace
	// The driver keeps console logs after a machine stops; the test's goes.
	console := filepath.Join(libvirtdrv.DefaultLogDir, dom+".console.log")
	t.Cleanup(func() { os.Remove(console) })

	s := newBareSite(t, filepath.Join(l.dir, "site"))
	os.MkdirAll(s.dir, 0o700)
	s.inet, s.serverPort = inet, freePort(t)
	s.vaultURL = "file://" + filepath.Join(s.dir, "vault")
	s.env = []string{"HAVEN_VAULT=" + s.vaultURL, "HAVEN_PASSWORD=correct horse"}
	mustHaven(t, s.env, "vault", "init")
	// The image as it is built: powered off, so the copy is crash-consistent.
	mustHaven(t, s.env, "snapshot", "--machine", "db", "--disk", "root="+l.img.Path, "--consistency", "crash")
	s.serverState = filepath.Join(s.dir, "server")
	s.serverExtra = fmt.Sprintf("standby: false\nvm_driver: libvirt\nlibvirt_socket: %s\n", sock)
	s.startServer()
	s.applyDoc(fmt.Sprintf(realVMSites+`machines:
  - name: db
    driver: qemu
    firmware: bios
    cpus: 2
    memory_mb: 768
    disks: [{name: root}]
    nics: [{name: eth0, network: prod, address: 10.71.0.10/24, recovery: static, static: 10.72.0.10}]
    health: {tcp_port: 5432}
    health_timeout: 15m
plans:
  - name: db
    groups: [{name: database, machines: [db]}]
`, rvNets["prim"], rvNets["rec"]))

	rep, r := s.runJob("failover", "unplanned", "--plan", "db")
	if r.code != 0 || rep.State != string(store.Succeeded) {
		t.Fatalf("failover: exit %d, %s: %s\n%s\nserver log:\n%s\nconsole:\n%s", r.code, rep.State, rep.Error, r.stderr, s.log("server"), testenv.TailFile(console))
	}
	t.Logf("failover to the libvirt domain: RTO %.1f s", deref(rep.RTOSeconds))
	if list := mustVirsh("list", "--name"); !strings.Contains(list, dom) {
		t.Fatalf("virsh list lacks %s:\n%s", dom, list)
	}
	info := mustVirsh("dominfo", dom)
	for _, want := range []string{"State:          running", "CPU(s):         2", "Max memory:     786432 KiB", "Autostart:      disable"} {
		if !strings.Contains(info, want) {
			t.Errorf("dominfo lacks %q:\n%s", want, info)
		}
	}
	recNS := s.hostID() + "-" + orchestrator.SiteRecovery
	if got := pgQuery(t, recNS, "10.72.0.10", "select host(inet_server_addr())"); len(got) != 1 || got[0] != "10.72.0.10" {
		t.Fatalf("the recovered VM answers as %q", got)
	}
	if _, err := net.InterfaceByName(tap); err == nil {
		t.Errorf("tap %s is in the root namespace", tap)
	}

	id := mustVirsh("domid", dom)
	s.r.Kill("server", syscall.SIGTERM)
	if st := mustVirsh("domstate", dom); st != "running" {
		t.Fatalf("the server's shutdown left the domain %q", st)
	}
	s.startServer()
	if got := mustVirsh("domid", dom); got != id {
		t.Fatalf("the restarted server booted the domain again: id %s, was %s", got, id)
	}
	if got := pgQuery(t, recNS, "10.72.0.10", "select 1"); len(got) != 1 || got[0] != "1" {
		t.Fatalf("after the server's restart: %q", got)
	}

	crep, r := s.runJob("failover", "cancel", "--plan", "db")
	if r.code != 0 || crep.State != string(store.Succeeded) {
		t.Fatalf("cancel: exit %d %s: %s\n%s\nserver log:\n%s", r.code, crep.State, crep.Error, r.stderr, s.log("server"))
	}
	if list := mustVirsh("list", "--all", "--name"); strings.Contains(list, dom) {
		t.Errorf("domain %s still defined after the cancel:\n%s", dom, list)
	}
	if _, err := os.Stat("/run/netns/" + recNS); !os.IsNotExist(err) {
		t.Errorf("the recovery site's namespace %s is left after the cancel: %v", recNS, err)
	}
	if _, err := net.InterfaceByName(tap); err == nil {
		t.Errorf("tap %s left in the root namespace", tap)
	}
	if recs, _ := filepath.Glob(filepath.Join(s.serverState, "host", "machines", "*", "libvirt", "*.json")); len(recs) > 0 {
		t.Errorf("libvirt machine records left: %v", recs)
	}
}
