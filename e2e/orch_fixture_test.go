package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/demo/rig"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/server/client"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// drSite is a whole scenario on one host, built by the demo's rig: a
// primary site (namespace with the prod network, two ns machines started
// through `haven machine`), an "inet" namespace where customers and
// `haven dns` live, a real `haven agent` replicating into a file vault,
// and `haven server` whose recovery site is joined to inet. Everything is
// named hv… and removed at the end. The fields are the test's view: a test
// may point it at another server (state, port, vault) and start it again.
type drSite struct {
	t        *testing.T
	r        *rig.Rig
	dir      string // scratch
	xfs      string // reflink filesystem: primary disks, server state
	lab      *vnet.Lab
	inet     string
	primNS   string
	env      []string // for the CLI and every process: vault, password
	vaultURL string

	agentPort, serverPort int
	agentToken            string
	serverState           string
	serverExtra           string               // more server config (copies:)
	serverVaultEnv        []string             // the server's vault credential when it differs from the agent's
	procs                 map[string]*exec.Cmd // the rig's, by name
	client                *client.Client
	machineFiles          map[string]string
}

const shopName = rig.ShopName

func newDRSite(t *testing.T) *drSite { return newDRSiteOn(t, nil) }

// newDRSiteOn is a drSite whose vault, when vault is given, is the one it
// makes (initialised here with the agent's credential) instead of a file
// vault: the agent gets only agentEnv, the server serverEnv (the control
// plane's admin credential).
func newDRSiteOn(t *testing.T, vault func(t *testing.T) (agentEnv, serverEnv []string)) *drSite {
	testenv.RequireRoot(t)
	testenv.LookPath(t, "mkfs.xfs")
	testenv.LookPath(t, "ip")
	s := newBareSite(t, testenv.Dir(t))
	s.xfs = testenv.XFS(t, 1024)
	s.r.XFS = s.xfs
	s.must(s.r.PrimarySite())
	s.lab, s.inet, s.primNS = s.r.Lab, s.r.Inet, s.r.PrimNS
	if vault == nil {
		s.must(s.r.InitVault(context.Background(), "correct horse"))
		s.vaultURL = s.r.Vault
		s.env = []string{"HAVEN_VAULT=" + s.vaultURL, "HAVEN_PASSWORD=correct horse"}
	} else {
		s.env, s.serverVaultEnv = vault(t)
		mustHaven(t, s.env, "vault", "init")
		s.vaultURL = envValue(s.env, "HAVEN_VAULT")
		s.r.Vault = s.vaultURL
	}
	s.agentPort, s.serverPort = freePort(t), freePort(t)
	s.agentToken = s.write("agent.token", "agent-token-"+strings.Repeat("x", 24)+"\n")
	s.serverState = filepath.Join(s.xfs, "server")
	s.primaryMachine("db", "10.1.0.10/24")
	s.primaryMachine("web", "10.1.0.20/24")
	s.startDNS()
	s.startAgent()
	s.startServer()
	return s
}

// newBareSite is a drSite of processes and files in dir only: no network,
// vault or server until a test makes them.
func newBareSite(t *testing.T, dir string) *drSite {
	r := rig.New(rig.Options{Dir: dir, Bin: havenBin, Env: baseEnv(), Cleanup: rig.OnTestEnd(t)})
	return &drSite{t: t, r: r, dir: dir, procs: r.Procs, machineFiles: r.MachineFiles}
}

func (s *drSite) must(err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	p, err := rig.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// primaryMachine makes the machine's disk on the reflink filesystem and
// starts it with `haven machine start`, as the agent's start hook will.
func (s *drSite) primaryMachine(name, addr string) {
	t := s.t
	img := filepath.Join(s.xfs, name+".img")
	b, err := os.ReadFile(machinetest.Image(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s.must(s.r.PrimaryMachine(context.Background(), machine.Spec{Name: name, Disks: []machine.Disk{{Name: "root", Path: img}},
		NICs:   []vnet.NIC{{Name: "eth0", Network: "prod", Addr: netip.MustParsePrefix(addr)}},
		Health: machine.HealthCheck{HTTPPort: 80, HTTPPath: "/"}, StopTimeout: 10 * time.Second,
		ConsoleLog: filepath.Join(s.dir, name+".console.log")}))
}

// start runs a haven process in its own process group (ns: inside that
// network namespace), logging to a file; it is killed at the end.
func (s *drSite) start(name, ns string, args ...string) *exec.Cmd {
	s.r.Env = append(baseEnv(), s.env...)
	s.must(s.r.Start(name, ns, havenBin, args...))
	return s.procs[name]
}

// kill signals a process group and waits for it.
func (s *drSite) kill(name string, sig syscall.Signal) { s.r.Kill(name, sig) }

func (s *drSite) log(name string) string { return s.r.Log(name) }

func (s *drSite) write(name, text string) string {
	p, err := s.r.Write(name, text)
	s.must(err)
	return p
}

func (s *drSite) startDNS() {
	s.must(s.r.StartDNS(context.Background(), "127.0.0.1:53"))
	s.eventually(30*time.Second, "dns answers the primary", func() error { return s.expectDNS("10.1.0.20") })
}

func (s *drSite) startAgent() {
	a := rig.Agent{Port: s.agentPort, ServerPort: s.serverPort, Token: s.agentToken}
	for _, m := range []string{"db", "web"} {
		a.Machines = append(a.Machines, rig.AgentMachine{Name: m, Disks: fmt.Sprintf("[{name: root, path: %s/%s.img}]", s.xfs, m),
			Policy: "{frequency: 15s, rpo_alert: 1m}"})
	}
	s.r.Env = append(baseEnv(), s.env...)
	s.must(s.r.StartAgent(a))
}

// server is the test's server as it stands (it may have moved).
func (s *drSite) server(args ...string) rig.Server {
	return rig.Server{Port: s.serverPort, State: s.serverState, Vault: s.vaultURL, Edge: s.inet, Args: args, Extra: s.serverExtra}
}

// startServer starts `haven server` (with more arguments) and waits for
// its API.
func (s *drSite) startServer(args ...string) {
	s.r.Env = append(append(baseEnv(), s.env...), s.serverVaultEnv...)
	c, err := s.r.StartServer(context.Background(), s.server(args...))
	if err != nil {
		s.t.Fatalf("%v\nserver log:\n%s", err, s.log("server"))
	}
	s.client = c
}

func (s *drSite) protection() string { return s.protectionWith("", "") }

// protectionWith adds YAML actions before the web group and after it.
func (s *drSite) protectionWith(webBefore, webAfter string) string {
	return rig.Shop{AgentURL: fmt.Sprintf("http://127.0.0.1:%d", s.agentPort), AgentToken: s.agentToken, DBPort: 80, Timeout: "1m",
		WebBefore: webBefore, WebAfter: webAfter, DNSToken: filepath.Join(s.dir, "dns.api-token"), Edge: s.inet, Resolve: "127.0.0.1:53"}.YAML()
}

func (s *drSite) apply() { s.applyDoc(s.protection()) }

func (s *drSite) applyDoc(doc string) {
	path := s.write("protection.yaml", doc)
	mustHaven(s.t, s.serverEnv(), "apply", "-f", path)
}

func (s *drSite) serverEnv() []string { return s.server().Env() }

func (s *drSite) eventually(d time.Duration, what string, fn func() error) {
	s.t.Helper()
	if err := rig.Eventually(context.Background(), d, what, fn); err != nil {
		s.t.Fatalf("%v\nserver log:\n%s\nagent log:\n%s", err, s.log("server"), s.log("agent"))
	}
}

// answers queries haven dns from the customers' namespace.
func (s *drSite) answers() ([]string, error) { return rig.Resolve(s.inet, "127.0.0.1:53") }

func (s *drSite) expectDNS(want string) error {
	got, err := s.answers()
	if err != nil {
		return err
	}
	if len(got) != 1 || got[0] != want {
		return fmt.Errorf("DNS answers %v, want [%s]", got, want)
	}
	return nil
}

// http does a request from namespace ns to a lab address.
func (s *drSite) http(ns, method, url, body string) (string, error) {
	return rig.HTTPIn(context.Background(), ns, method, url, body)
}

// waitPoints waits until the vault has n points of every machine.
func (s *drSite) waitPoints(n int) {
	s.eventually(2*time.Minute, fmt.Sprintf("%d points per machine", n), func() error {
		st, err := s.client.Status(context.Background())
		if err != nil {
			return err
		}
		for _, m := range st.Machines {
			if m.Points < n {
				return fmt.Errorf("%s has %d points", m.Name, m.Points)
			}
		}
		return nil
	})
}

// runJob submits a job through the CLI and returns its report.
func (s *drSite) runJob(args ...string) (*orchestrator.Report, result) {
	r := haven(s.t, s.serverEnv(), append(args, "--json")...)
	var rep orchestrator.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		s.t.Fatalf("haven %v: exit %d, not a report: %v\n%s\n%s\nserver log:\n%s", args, r.code, err, r.stdout, r.stderr, s.log("server"))
	}
	return &rep, r
}

func (s *drSite) hostID() string {
	id := rig.HostID(s.serverState)
	if id == "" {
		s.t.Fatalf("no host ID in %s", s.serverState)
	}
	return id
}

// removeRecoverySite stops what the server left running on purpose (its
// machines run detached so they outlive it) and removes its namespaces.
func (s *drSite) removeRecoverySite() {
	if err := s.r.RemoveRecoverySite(s.server()); err != nil {
		s.t.Error(err)
	}
}

// disaster kills the primary site at once: its agent and both machines
// with SIGKILL, and its network namespace.
func (s *drSite) disaster(t *testing.T) {
	t.Helper()
	s.kill("agent", syscall.SIGKILL)
	for _, m := range []string{"db", "web"} {
		s.r.KillMachine(m)
	}
	if err := (vnet.Netlink{}).DelNS(s.primNS); err != nil {
		t.Fatal(err)
	}
}
