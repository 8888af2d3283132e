package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
)

// TestRealVMFailoverTest is the product flow for a real VM: a protection
// config whose machine has driver qemu and firmware bios, replicated by an
// agent with provider qemu while its PostgreSQL takes inserts; `haven
// failover test` boots the newest point at the isolated test site on
// another subnet (the server sets Readdress, cloud-init applies it), where
// PostgreSQL answers with every row acknowledged before the point; the
// cleanup removes the VM and the test site.
func TestRealVMFailoverTest(t *testing.T) {
	l := newRVLab(t)
	testenv.LookPath(t, "mkfs.xfs")
	inet, err := l.lab.AddEdge("inet")
	if err != nil {
		t.Fatal(err)
	}
	spec := l.spec("pg", []machine.Disk{{Name: "root", Path: l.disk()}}, l.nic("eth0", "prim", 10))
	l.boot(l.qemu, spec)
	w := startWriter(t, l.client["prim"], l.addr("prim", 10), 1)
	a := l.startAgent(l.sock(spec, "qmp.sock"), l.sock(spec, "qga.sock"), "[{name: root, device: d0}]", "{frequency: 15s, rpo_alert: 1m}")

	s := a.site
	s.inet, s.serverPort = inet, freePort(t)
	s.vaultURL = "file://" + filepath.Join(s.dir, "vault")
	s.serverState = filepath.Join(testenv.XFS(t, 4096), "server") // standby images are reflink clones
	s.startServer()
	s.applyDoc(fmt.Sprintf(realVMSites+`agents:
  - {name: prim, url: "http://%[3]s", token_file: %[4]s, timeout: 3s}
machines:
  - name: %[5]s
    agent: prim
    driver: qemu
    firmware: bios
    cpus: 1
    disks: [{name: root}]
    nics: [{name: eth0, network: prod, address: 10.71.0.10/24, recovery: static, static: 10.72.0.10}]
    health: {tcp_port: 5432}
    health_timeout: 8m
plans:
  - name: db
    groups: [{name: database, machines: [%[5]s]}]
`, rvNets["prim"], rvNets["rec"], a.addr, filepath.Join(s.dir, "token"), vmName))
	first := a.firstAfter("first point", time.Time{})
	under := a.waitPoint("an app-consistent point after the first", first.Time, func(p vault.Point) bool { return p.Consistency == "app" })

	rep, r := s.runJob("failover", "test", "--plan", "db")
	if r.code != 0 || rep.State != string(store.Succeeded) || len(rep.Points) != 1 {
		t.Fatalf("test failover: exit %d, %s: %s\n%s\nserver log:\n%s", r.code, rep.State, rep.Error, r.stderr, s.log("server"))
	}
	pt := rep.Points[0]
	if pt.Time.Before(under.Time) || pt.Consistency != "app" {
		t.Fatalf("the test failover used point %+v; the newest is at least %s (app)", pt, under.ID)
	}
	testNS := s.hostID() + "-test"
	if got := pgQuery(t, testNS, "10.72.0.10", "select host(inet_server_addr())"); len(got) != 1 || got[0] != "10.72.0.10" {
		t.Fatalf("the recovered VM answers as %q", got)
	}
	checkAcked(t, w, pt.Time, testNS, "10.72.0.10")
	t.Logf("test failover: point %s (%s), RTO %.1f s", pt.Point, pt.Consistency, deref(rep.RTOSeconds))

	crep, r := s.runJob("failover", "cleanup", "--plan", "db")
	if r.code != 0 || crep.State != string(store.Succeeded) {
		t.Fatalf("cleanup: exit %d %s: %s", r.code, crep.State, crep.Error)
	}
	if _, err := os.Stat("/run/netns/" + testNS); !os.IsNotExist(err) {
		t.Errorf("the test site's namespace %s is left after cleanup: %v", testNS, err)
	}
	if left := processesWith(filepath.Join(s.serverState, "host")); len(left) > 0 {
		t.Errorf("processes of the recovered VM left after cleanup: %q", left)
	}
}

// processesWith lists the command lines that mention path.
func processesWith(path string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), path) {
			out = append(out, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func deref(f *float64) float64 {
	if f == nil {
		return -1
	}
	return *f
}
