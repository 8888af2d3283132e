package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/testenv"
)

// The end-to-end tests of several `haven dns` servers: real processes of
// the haven binary, real DNS over loopback, a real Unbound in front, and
// the real engine running the failover job (its host and agents are the
// orchtest fakes, which the dns step does not touch).

const trafficZone = "example.test."
const trafficProfile = "alpha.example.test"

// buildHaven builds the haven binary into the test's directory.
func buildHaven(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "haven")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/haven-dr/haven/cmd/haven").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// dnsProc is one `haven dns` process of a cluster.
type dnsProc struct {
	t                  *testing.T
	bin, name, dir     string
	dnsPort, apiPort   int
	token, config, log string
	ds                 []string // the DS of the key it shares with the others
	cmd                *exec.Cmd
	exited             chan struct{}
}

func (p *dnsProc) dnsAddr() string { return fmt.Sprintf("127.0.0.1:%d", p.dnsPort) }
func (p *dnsProc) apiURL() string  { return fmt.Sprintf("http://127.0.0.1:%d", p.apiPort) }

// clusterSpec shapes the servers' config: endpoints name=target, the
// monitor port (0: unmonitored), probe quorum, and per server the
// endpoints whose probe goes to a dead address instead (cut off).
type clusterSpec struct {
	endpoints   [][2]string
	monitorPort int
	quorum      int
	cutOff      map[string][]string
}

// startCluster starts n servers, each naming the others as peers and
// signing with the key they share.
func startCluster(t *testing.T, bin string, names []string, spec clusterSpec) []*dnsProc {
	dir := testenv.Dir(t)
	var ps []*dnsProc
	for _, n := range names {
		p := &dnsProc{t: t, bin: bin, name: n, dir: filepath.Join(dir, n), dnsPort: testenv.FreePort(t), apiPort: testenv.FreePort(t)}
		if err := os.MkdirAll(p.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		p.token = filepath.Join(p.dir, "api-token")
		if err := os.WriteFile(p.token, []byte("token-"+n+strings.Repeat("x", 24)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p.config, p.log = filepath.Join(p.dir, "dns.yaml"), filepath.Join(p.dir, "dns.log")
		ps = append(ps, p)
	}
	for _, p := range ps {
		if err := os.WriteFile(p.config, []byte(clusterConfig(p, ps, spec)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	shareKey(t, ps)
	for _, p := range ps {
		p.start()
	}
	for _, p := range ps {
		p.waitAPI()
	}
	return ps
}

// waitAPI waits until the server's API answers (it opens after DNS).
func (p *dnsProc) waitAPI() {
	p.t.Helper()
	testenv.Eventually(p.t, 30*time.Second, p.name+" API up", func() bool {
		select {
		case <-p.exited:
			p.t.Fatalf("%s exited:\n%s", p.name, testenv.TailFile(p.log))
		default:
		}
		resp, err := http.Get(p.apiURL() + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func clusterConfig(self *dnsProc, all []*dnsProc, spec clusterSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\napi: 127.0.0.1:%d\napi_token_file: %s\n", self.dnsAddr(), self.apiPort, self.token)
	fmt.Fprintf(&b, "dnssec: {key_dir: %s}\n", keyDir(self))
	fmt.Fprintf(&b, "zones:\n  - name: %s\n    ns: [", trafficZone)
	for i := range all {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "ns%d.%s", i+1, trafficZone)
	}
	b.WriteString("]\n    records:\n")
	for i := range all {
		fmt.Fprintf(&b, "      - {name: ns%d, type: A, value: 127.0.0.1}\n", i+1)
	}
	fmt.Fprintf(&b, "profiles:\n  - name: %s\n    ttl: 1\n", trafficProfile)
	if spec.monitorPort != 0 {
		fmt.Fprintf(&b, "    monitor: {protocol: tcp, port: %d, interval: 1s, timeout: 900ms, tolerated_failures: 1, required_successes: 1}\n", spec.monitorPort)
	}
	b.WriteString("    endpoints:\n")
	for i, e := range spec.endpoints {
		probe := ""
		if slices.Contains(spec.cutOff[self.name], e[0]) {
			probe = ", probe_address: 127.0.0.99" // nothing listens there
		}
		fmt.Fprintf(&b, "      - {name: %s, target: %s, priority: %d%s}\n", e[0], e[1], i+1, probe)
	}
	fmt.Fprintf(&b, "cluster:\n  name: %s\n  interval: 300ms\n  probe_quorum: %d\n  peers:\n", self.name, spec.quorum)
	for _, p := range all {
		if p != self {
			fmt.Fprintf(&b, "    - {name: %s, api: %q, token_file: %s}\n", p.name, p.apiURL(), p.token)
		}
	}
	return b.String()
}

// start runs the process without waiting for it.
func (p *dnsProc) start() {
	t := p.t
	t.Helper()
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(p.bin, "dns", "--config", p.config)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan struct{})
	cmd, exited := p.cmd, p.exited
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-exited })
}

// kill SIGKILLs the process and waits for it to be gone.
func (p *dnsProc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// firstAnswer polls the server from its start until it answers at all and
// returns that first answer: what a customer would get right away.
func (p *dnsProc) firstAnswer() []string {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			p.t.Fatalf("%s exited:\n%s", p.name, testenv.TailFile(p.log))
		default:
		}
		if got, err := askServer(p.dnsAddr(), false); err == nil {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("%s never answered:\n%s", p.name, testenv.TailFile(p.log))
	return nil
}

// askServer asks addr for the profile's A records (rd: through the
// validating resolver, as a customer; an answer that is not secure is
// errInsecure).
func askServer(addr string, rd bool) ([]string, error) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(trafficProfile), mdns.TypeA)
	m.RecursionDesired = rd
	c := &mdns.Client{Timeout: 300 * time.Millisecond}
	if rd {
		c.Timeout = 3 * time.Second
		m.SetEdns0(1232, true)
	}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return nil, err
	}
	if rd {
		if err := checkSecure(r); err != nil {
			return nil, err
		}
	}
	if r.Rcode != mdns.RcodeSuccess {
		return nil, fmt.Errorf("rcode %s", mdns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return out, nil
}

// answersEventually waits until addr answers want, failing with what it
// answered last.
func answersEventually(t *testing.T, addr string, rd bool, want string, within time.Duration) {
	t.Helper()
	var got []string
	var err error
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if got, err = askServer(addr, rd); err == nil && slices.Equal(got, []string{want}) {
			return
		} else if errors.Is(err, errInsecure) {
			t.Fatalf("%s: %v (waiting for %s)", addr, err, want)
		}
	}
	t.Fatalf("%s answers %v (%v), want %s after %s", addr, got, err, want, within)
}

// clusterWorld is a world whose traffic section lists the cluster's
// servers, reached through the real DNSTraffic.
func clusterWorld(t *testing.T, ps []*dnsProc) *world {
	var servers []string
	for _, p := range ps {
		servers = append(servers, fmt.Sprintf(`{name: %s, api: "%s", token_file: %s, resolve: "%s"}`,
			p.name, p.apiURL(), p.token, p.dnsAddr()))
	}
	return serversWorld(t, servers, DNSTraffic, func(doc string) string {
		return strings.ReplaceAll(doc, "profile: alpha,", "profile: "+trafficProfile+",")
	})
}

// serversWorld is a world whose config lists servers (YAML flow maps)
// under traffic.servers, edited by edit, and dialed through dial.
func serversWorld(t *testing.T, servers []string, dial TrafficDialer, edit func(string) string) *world {
	w := newWorld(t)
	doc := edit(strings.Replace(twoPlansConfig(), `traffic: {api: "http://127.0.0.1:1"}`,
		"traffic: {servers: ["+strings.Join(servers, ", ")+"]}", 1))
	if _, _, err := w.o.Apply(context.Background(), []byte(doc)); err != nil {
		t.Fatal(err)
	}
	cfg, err := protection.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	w.cfg, w.dial = cfg, dial
	w.restart()
	return w
}

// stateOf is a server's /v1/state.
func stateOf(t *testing.T, p *dnsProc) dns.ClusterState {
	t.Helper()
	c, err := dns.NewClient(p.apiURL(), dns.ClientOptions{TokenFile: p.token, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// A restarted server opens its DNS socket before its API listens, so
	// a test that saw its first DNS answer may still find the API closed
	// for a moment.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.State(context.Background())
		if err == nil {
			return st
		}
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			t.Fatalf("%s: %v", p.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
