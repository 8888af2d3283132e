package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/server/client"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// drSite is a whole scenario on one host: a primary site (namespace with
// the prod network, two ns machines started through `haven machine`), an
// "inet" namespace where customers and `haven dns` live, a real `haven
// agent` replicating into a file vault, and `haven server` whose recovery
// site is joined to inet. Everything is named hv… and removed at the end.
type drSite struct {
	t        *testing.T
	dir      string // scratch
	xfs      string // reflink filesystem: primary disks, server state
	lab      *vnet.Lab
	inet     string
	primNS   string
	env      []string
	vaultURL string

	agentPort, serverPort int
	agentToken            string
	serverState           string
	procs                 map[string]*exec.Cmd
	client                *client.Client
	machineFiles          map[string]string
}

var prodNet = vnet.Network{Name: "prod", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")}

const shopName = "shop.example.test"

func newDRSite(t *testing.T) *drSite {
	testenv.RequireRoot(t)
	testenv.LookPath(t, "mkfs.xfs")
	testenv.LookPath(t, "ip")
	s := &drSite{t: t, dir: testenv.Dir(t), procs: map[string]*exec.Cmd{}, machineFiles: map[string]string{}}
	s.xfs = testenv.XFS(t, 1024)
	s.lab = vnet.NewLab(vnet.Netlink{})
	t.Cleanup(func() { s.lab.Close() })
	if _, err := s.lab.AddSite("prim", []vnet.Network{prodNet}); err != nil {
		t.Fatal(err)
	}
	var err error
	if s.inet, err = s.lab.AddEdge("inet"); err != nil {
		t.Fatal(err)
	}
	if err := s.lab.Connect("inet", "prim"); err != nil {
		t.Fatal(err)
	}
	att, _ := s.lab.Attachment("prod")
	s.primNS = att.NS
	pw := filepath.Join(s.dir, "password")
	os.WriteFile(pw, []byte("correct horse\n"), 0o600)
	s.vaultURL = "file://" + filepath.Join(s.dir, "vault")
	s.env = []string{"HAVEN_VAULT=" + s.vaultURL, "HAVEN_PASSWORD=correct horse"}
	mustHaven(t, s.env, "vault", "init")
	s.agentPort, s.serverPort = freePort(t), freePort(t)
	s.agentToken = filepath.Join(s.dir, "agent.token")
	os.WriteFile(s.agentToken, []byte("agent-token-"+strings.Repeat("x", 24)+"\n"), 0o600)
	s.serverState = filepath.Join(s.xfs, "server")
	s.primaryMachine("db", "10.1.0.10/24")
	s.primaryMachine("web", "10.1.0.20/24")
	s.startDNS()
	s.startAgent()
	s.startServer()
	return s
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
	att, _ := s.lab.Attachment("prod")
	mf := map[string]any{
		"machine": machine.Spec{Name: name, Disks: []machine.Disk{{Name: "root", Path: img}},
			NICs:   []vnet.NIC{{Name: "eth0", Network: "prod", Addr: netip.MustParsePrefix(addr)}},
			Health: machine.HealthCheck{HTTPPort: 80, HTTPPath: "/"}, StopTimeout: 10 * time.Second,
			ConsoleLog: filepath.Join(s.dir, name+".console.log")},
		"networks":  map[string]vnet.Attachment{"prod": att},
		"state_dir": filepath.Join(s.dir, "prim-machines"),
		"pid_file":  filepath.Join(s.dir, name+".pid"),
		"log":       filepath.Join(s.dir, name+".run.log"),
	}
	path := filepath.Join(s.dir, name+".machine.json")
	jb, _ := json.Marshal(mf)
	os.WriteFile(path, jb, 0o644)
	s.machineFiles[name] = path
	mustHaven(t, nil, "machine", "start", "--file", path)
	t.Cleanup(func() { haven(t, nil, "machine", "stop", "--file", path) })
}

// start runs a haven process in its own process group (ns: inside that
// network namespace), logging to a file; it is killed at the end.
func (s *drSite) start(name, ns string, args ...string) *exec.Cmd {
	logPath := filepath.Join(s.dir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	var cmd *exec.Cmd
	if ns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, havenBin}, args...)...)
	} else {
		cmd = exec.Command(havenBin, args...)
	}
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "HAVEN_TEST_KDF=fast"}, s.env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	lf.Close()
	s.procs[name] = cmd
	s.t.Cleanup(func() { s.kill(name, syscall.SIGTERM) })
	return cmd
}

// kill signals a process group and waits for it.
func (s *drSite) kill(name string, sig syscall.Signal) {
	cmd := s.procs[name]
	if cmd == nil || cmd.Process == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, sig)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	delete(s.procs, name)
}

func (s *drSite) log(name string) string {
	b, _ := os.ReadFile(filepath.Join(s.dir, name+".log"))
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

func (s *drSite) write(name, text string) string {
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return p
}

func (s *drSite) startDNS() {
	cfg := fmt.Sprintf(`listen: 127.0.0.1:53
api: 127.0.0.1:8053
zones:
  - name: example.test
profiles:
  - name: %s
    routing: priority
    ttl: 1
    monitor: {protocol: http, port: 80, path: /, interval: 1s, timeout: 500ms, tolerated_failures: 0, required_successes: 1}
    endpoints:
      - {name: primary, target: 10.1.0.20, priority: 1}
      - {name: recovery, target: 10.2.0.20, priority: 2}
`, shopName)
	path := s.write("dns.yaml", cfg)
	s.start("dns", s.inet, "dns", "--config", path)
	s.eventually(30*time.Second, "dns answers the primary", func() error { return s.expectDNS("10.1.0.20") })
}

func (s *drSite) startAgent() {
	var b strings.Builder
	fmt.Fprintf(&b, "vault: %s\nstate_dir: %s\nlisten: 127.0.0.1:%d\ncontrol_token_file: %s\n", s.vaultURL,
		filepath.Join(s.dir, "agent-state"), s.agentPort, s.agentToken)
	fmt.Fprintf(&b, "server: {url: http://127.0.0.1:%d, agent: prim, token_file: %s, interval: 1s}\nmachines:\n", s.serverPort, s.agentToken)
	for _, m := range []string{"db", "web"} {
		fmt.Fprintf(&b, `  - name: %[1]s
    provider: reflink
    clone_dir: %[2]s/clones
    disks: [{name: root, path: %[2]s/%[1]s.img}]
    policy: {frequency: 15s, rpo_alert: 1m}
    control:
      stop: %[3]s machine stop --file %[4]s
      start: %[3]s machine start --file %[4]s
`, m, s.xfs, havenBin, s.machineFiles[m])
	}
	os.MkdirAll(filepath.Join(s.xfs, "clones"), 0o755)
	path := s.write("agent.yaml", b.String())
	s.start("agent", "", "agent", "run", "--config", path)
}

func (s *drSite) startServer() {
	cfg := fmt.Sprintf("listen: 127.0.0.1:%d\nstate_dir: %s\nvault: %s\nedge: %s\nstandby_interval: 1s\n",
		s.serverPort, s.serverState, s.vaultURL, s.inet)
	path := s.write("server.yaml", cfg)
	s.start("server", "", "server", "--config", path)
	s.t.Cleanup(s.removeRecoverySite)
	tokFile := filepath.Join(s.serverState, "admin.token")
	s.eventually(60*time.Second, "server up", func() error {
		b, err := os.ReadFile(tokFile)
		if err != nil {
			return err
		}
		s.client = client.New(fmt.Sprintf("127.0.0.1:%d", s.serverPort), strings.TrimSpace(string(b)), 10*time.Second)
		_, err = s.client.Jobs(context.Background(), "", false, 1)
		return err
	})
}

func (s *drSite) protection() string { return s.protectionWith("", "") }

// protectionWith adds YAML action lines before and after the web group.
func (s *drSite) protectionWith(webBefore, webAfter string) string {
	return fmt.Sprintf(`sites: {primary: onprem, recovery: cloud}
networks:
  primary: [{name: prod, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  recovery: [{name: rec, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
  test: [{name: drill, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
mapping:
  recovery: {prod: rec}
  test: {prod: drill}
agents:
  - {name: prim, url: "http://127.0.0.1:%d", token_file: %s, timeout: 3s}
machines:
  - name: db
    agent: prim
    disks: [{name: root}]
    nics: [{name: eth0, network: prod, address: 10.1.0.10/24, recovery: static, static: 10.2.0.10}]
    health: {tcp_port: 80}
    health_timeout: 1m
  - name: web
    agent: prim
    disks: [{name: root}]
    nics: [{name: eth0, network: prod, address: 10.1.0.20/24, recovery: static, static: 10.2.0.20}]
    health: {http_port: 80, http_path: /}
    health_timeout: 1m
plans:
  - name: shop
    groups:
      - name: database
        machines: [db]
      - name: web
        machines: [web]
        before: [%[6]s]
        after:
          - {type: dns, profile: %[3]s, endpoint: recovery, directions: [failover], timeout: 1m}
          - {type: dns, profile: %[3]s, endpoint: primary, directions: [failback], timeout: 1m}
          %[7]s
traffic: {api: "http://127.0.0.1:8053", token_file: %[5]s, netns: %[4]s, resolve: "127.0.0.1:53"}
`, s.agentPort, s.agentToken, shopName, s.inet, filepath.Join(s.dir, "dns.api-token"), webBefore, webAfter)
}

func (s *drSite) apply() { s.applyDoc(s.protection()) }

func (s *drSite) applyDoc(doc string) {
	path := s.write("protection.yaml", doc)
	mustHaven(s.t, s.serverEnv(), "apply", "-f", path)
}

func (s *drSite) serverEnv() []string {
	return []string{fmt.Sprintf("HAVEN_SERVER=127.0.0.1:%d", s.serverPort), "HAVEN_TOKEN_FILE=" + filepath.Join(s.serverState, "admin.token")}
}

func (s *drSite) eventually(d time.Duration, what string, fn func() error) {
	s.t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not after %s: %v\nserver log:\n%s\nagent log:\n%s", what, d, err, s.log("server"), s.log("agent"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// answers queries haven dns from the customers' namespace.
func (s *drSite) answers() ([]string, error) {
	var out []string
	err := vnet.Do(s.inet, func() error {
		c := &mdns.Client{Timeout: 2 * time.Second}
		q := new(mdns.Msg)
		q.SetQuestion(mdns.Fqdn(shopName), mdns.TypeA)
		r, _, err := c.Exchange(q, "127.0.0.1:53")
		if err != nil {
			return err
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*mdns.A); ok {
				out = append(out, a.A.String())
			}
		}
		return nil
	})
	return out, err
}

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
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	resp, err := machine.HTTPClient(ns).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	return string(b), nil
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
	b, err := os.ReadFile(filepath.Join(s.serverState, "host", "host-id"))
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// removeRecoverySite stops what the server left running on purpose (its
// machines run detached so they outlive it) and removes its namespaces.
func (s *drSite) removeRecoverySite() {
	s.kill("server", syscall.SIGTERM)
	files, _ := filepath.Glob(filepath.Join(s.serverState, "host", "machines", "*", "detached", "*.json"))
	for _, f := range files {
		haven(s.t, nil, "machine", "stop", "--file", f)
	}
	// Belt and braces: no runner of this server's machines may outlive
	// the test, whatever state its files are in.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "machine\x00run\x00--file\x00"+s.serverState) {
			var pid int
			fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
			s.t.Errorf("machine runner left after stop: %q", b)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	b, err := os.ReadFile(filepath.Join(s.serverState, "host", "host-id"))
	if err != nil {
		return
	}
	id := strings.TrimSpace(string(b))
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), id+"-") {
			vnet.Netlink{}.DelNS(e.Name())
		}
	}
}

// disaster kills the primary site at once: its agent and both machines
// with SIGKILL, and its network namespace.
func (s *drSite) disaster(t *testing.T) {
	t.Helper()
	s.kill("agent", syscall.SIGKILL)
	for _, m := range []string{"db", "web"} {
		b, _ := os.ReadFile(filepath.Join(s.dir, m+".pid"))
		var pid int
		fmt.Sscan(string(b), &pid)
		if pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if err := (vnet.Netlink{}).DelNS(s.primNS); err != nil {
		t.Fatal(err)
	}
}
