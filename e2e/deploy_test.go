package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/testenv/debimage"
	"github.com/haven-dr/haven/packaging"
)

// TestTwoSiteDeployment follows docs/deploy.md literally: the doc's blocks
// (files to write, shell to run, each marked with its host and step) are
// read from the file and run in two Debian containers booted with
// systemd, a primary and a recovery host, each in a network namespace of
// its own joined to a router namespace, with a customer namespace beside
// them. Between steps the test checks the real effects: units active,
// points in the vault, the drill's copy answering in its isolated network,
// the DNS answer moving by a real query from the customer, the recovered
// machine answering with the primary's data, and after failback the
// primary answering with the data written at the recovery site.
func TestTwoSiteDeployment(t *testing.T) {
	img := debimage.Require(t)
	for _, tool := range []string{"systemd-nspawn", "nsenter", "dig", "curl", "ip"} {
		testenv.LookPath(t, tool)
	}
	doc := readDeployDoc(t, "../docs/deploy.md")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var deb string
	var debErr error
	built := make(chan struct{})
	go func() {
		defer close(built)
		deb, debErr = packaging.Build(ctx, packaging.Options{OutDir: t.TempDir()})
	}()
	web := machinetest.Image(t)
	lab := newDeployLab(t)
	primRoot, recRoot := mountImageRoot(t, img), mountImageRoot(t, img)
	<-built
	if debErr != nil {
		t.Fatal(debErr)
	}
	for _, root := range []string{primRoot, recRoot} {
		copyInto(t, deb, filepath.Join(root, "root", filepath.Base(deb)))
		// No cloud-init datasource here: its fallback would take eth0.
		if err := os.WriteFile(filepath.Join(root, "etc/cloud/cloud-init.disabled"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		// The test image's PostgreSQL is not part of this deployment: it
		// would only slow each boot.
		os.Remove(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/postgresql.service"))
	}
	if err := os.MkdirAll(filepath.Join(primRoot, "var/lib/machines"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyInto(t, web, filepath.Join(primRoot, "var/lib/machines/web.img"))

	s := &twoSites{t: t, start: time.Now(), doc: doc, lab: lab, roots: map[string]string{"primary": primRoot, "recovery": recRoot}}
	s.boot("primary", "recovery")

	s.step("install")
	s.step("vault")
	rec := s.hosts["recovery"]
	rec.waitActive(t, "haven-vault")
	waitFor(t, "haven vault serve answers", func() error {
		_, err := rec.inNet("curl", "-sS", "-o", "/dev/null", "--cacert", filepath.Join(recRoot, "etc/haven-vault/tls/ca.crt"),
			"https://localhost:8443/v1/list?prefix=x")
		return err
	})
	s.step("vault-init")
	s.step("dns")
	s.step("dns-start")
	rec.waitActive(t, "haven-dns")
	s.step("server")
	s.step("server-start")
	rec.waitActive(t, "haven-server")
	waitFor(t, "haven server answers", func() error {
		_, err := rec.inNet("curl", "-fsS", "--cacert", filepath.Join(recRoot, "var/lib/haven/server/tls/ca.crt"), "https://localhost:7780/healthz")
		return err
	})

	s.step("machine")
	s.waitBody("the primary's web", "http://10.1.0.20/", "hello from web")
	s.step("agent-token")
	s.step("copy")
	s.step("agent")
	s.hosts["primary"].waitActive(t, "haven-agent")
	s.step("protect")
	s.waitDNS("10.1.0.20")

	// Data at the primary, then a point that holds it.
	wrote := time.Now()
	s.mustCurl("-X", "POST", "--data", "before-disaster", "http://10.1.0.20/write?path=/before")
	s.waitPointAfter(wrote)

	s.step("drill")
	s.checkDrillCopy()
	s.waitDNS("10.1.0.20") // a drill never moves customers
	s.step("drill-cleanup")

	s.hosts["primary"].powerLoss(t)
	s.step("failover")
	out := s.step("check-recovery")
	if want := "203.0.113.7\nhello from web"; out != want {
		t.Fatalf("after failover the customer sees %q, want %q", out, want)
	}
	if got := s.mustCurl("http://203.0.113.7/read?path=/before"); got != "before-disaster" {
		t.Fatalf("recovered web holds %q, want the primary's data", got)
	}
	s.mustCurl("-X", "POST", "--data", "after-failover", "http://203.0.113.7/write?path=/after")

	s.boot("primary")
	s.hosts["primary"].waitActive(t, "haven-agent")
	s.step("failback")
	out = s.step("check-primary")
	if want := "10.1.0.20\nhello from web"; out != want {
		t.Fatalf("after failback the customer sees %q, want %q", out, want)
	}
	if got := s.mustCurl("http://10.1.0.20/read?path=/after"); got != "after-failover" {
		t.Fatalf("the primary's web holds %q after failback, want what the recovered one wrote", got)
	}
	st, err := s.status()
	if err != nil || len(st.Plans) != 1 || st.Plans[0].Phase != "protected" {
		t.Fatalf("after failback: plans %+v %v", st.Plans, err)
	}
}

// twoSites is the test's view of the deployment: the doc, the lab, the
// containers by host name.
type twoSites struct {
	t     *testing.T
	start time.Time
	doc   []docBlock
	lab   *deployLab
	roots map[string]string
	hosts map[string]*container
}

// boot boots the named hosts at once, each in its lab namespace.
func (s *twoSites) boot(names ...string) {
	if s.hosts == nil {
		s.hosts = map[string]*container{}
	}
	for _, n := range names {
		// Writable /proc/sys: the recovery site's namespaces set their own
		// ip_forward, which nspawn's read-only /proc/sys refuses.
		s.hosts[n] = startContainer(s.t, s.roots[n], []string{"SYSTEMD_NSPAWN_API_VFS_WRITABLE=yes"},
			"--network-namespace-path=/run/netns/"+s.lab.ns[n],
			// The ns machines attach their disks to loop devices.
			"--bind=/dev/loop-control", "--capability=CAP_NET_ADMIN")
	}
	for _, n := range names {
		c := s.hosts[n]
		c.waitBooted(s.t)
		s.t.Cleanup(func() {
			if s.t.Failed() {
				out, _ := c.run("journalctl", "--no-pager", "-q", "-n", "150", "-u", "web", "-u", "haven-*")
				s.t.Logf("%s journal:\n%s", n, out)
			}
			// Nothing of the hosts outlives the test, so no orderly
			// shutdown is worth its half minute: their roots are copies.
			c.powerLoss(s.t)
		})
	}
}

// step runs the doc's blocks of one step in the doc's order and returns
// the output of the last command run (trimmed).
func (s *twoSites) step(name string) string {
	s.t.Helper()
	s.t.Logf("%5.1fs step %s", time.Since(s.start).Seconds(), name)
	var out string
	n := 0
	for _, b := range s.doc {
		if b.step != name {
			continue
		}
		n++
		for _, h := range b.hosts {
			if b.file != "" {
				s.writeFile(h, b.file, b.text)
				continue
			}
			out = s.runScript(name, h, b.text)
		}
	}
	if n == 0 {
		s.t.Fatalf("docs/deploy.md has no block of step %q", name)
	}
	return out
}

// writeFile writes a doc file on a host through its mounted root. An
// existing file keeps its mode and owner (as an editor keeps them); a new
// one is root's, mode 0600 unless it is a unit or a profile script.
func (s *twoSites) writeFile(host, path, text string) {
	p := filepath.Join(s.roots[host], path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		s.t.Fatal(err)
	}
	mode := os.FileMode(0o600)
	if strings.HasPrefix(path, "/etc/systemd/") || strings.HasPrefix(path, "/etc/profile.d/") {
		mode = 0o644
	}
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		s.t.Fatal(err)
	}
}

// runScript runs a shell block on a host (a login shell in /root, so
// /etc/profile.d applies), or in the customer's namespace; `scp` lines
// are copies between the containers' roots.
func (s *twoSites) runScript(step, host, text string) string {
	s.t.Helper()
	var out string
	var chunk []string
	flush := func() {
		if len(chunk) == 0 {
			return
		}
		script := strings.Join(chunk, "\n")
		chunk = nil
		var err error
		if host == "client" {
			var b []byte
			b, err = exec.Command("ip", "netns", "exec", s.lab.ns["client"], "bash", "-ec", script).CombinedOutput()
			out = strings.TrimSpace(string(b))
		} else {
			out, err = s.hosts[host].run("bash", "-lec", "cd /root\n"+script)
		}
		if err != nil {
			s.t.Fatalf("docs/deploy.md step %s on %s: %v\n%s\n%s", step, host, err, script, out)
		}
	}
	for _, line := range strings.Split(strings.ReplaceAll(text, "\\\n", " "), "\n") {
		if args, ok := strings.CutPrefix(line, "scp "); ok {
			flush()
			s.scp(host, strings.Fields(args))
			continue
		}
		chunk = append(chunk, line)
	}
	flush()
	return out
}

// scp copies SRC to DST, either of them HOST.example.com:PATH, as scp does
// over SSH: a new file gets the source's mode.
func (s *twoSites) scp(here string, args []string) {
	if len(args) != 2 {
		s.t.Fatalf("scp %v: want SRC DST", args)
	}
	where := func(a string) string {
		if h, p, ok := strings.Cut(a, ".example.com:"); ok {
			return filepath.Join(s.roots[h], p)
		}
		return filepath.Join(s.roots[here], a)
	}
	src, dst := where(args[0]), where(args[1])
	b, err := os.ReadFile(src)
	if err != nil {
		s.t.Fatalf("scp %v: %v", args, err)
	}
	st, _ := os.Stat(src)
	if err := os.WriteFile(dst, b, st.Mode().Perm()); err != nil {
		s.t.Fatalf("scp %v: %v", args, err)
	}
}

type deployStatus struct {
	Machines []struct {
		Name      string     `json:"name"`
		Points    int        `json:"points"`
		PointTime *time.Time `json:"point_time"`
	} `json:"machines"`
	Plans []struct {
		Name  string `json:"name"`
		Phase string `json:"phase"`
	} `json:"plans"`
}

// status is `haven status --json` on the recovery host, with the doc's
// CLI environment.
func (s *twoSites) status() (deployStatus, error) {
	var st deployStatus
	out, err := s.hosts["recovery"].run("bash", "-lc", "haven status --json")
	if err != nil {
		return st, fmt.Errorf("%v: %s", err, out)
	}
	return st, json.Unmarshal([]byte(out), &st)
}

// waitPointAfter waits for a point of web captured after t0.
func (s *twoSites) waitPointAfter(t0 time.Time) {
	s.t.Helper()
	waitFor(s.t, "a point of web after the write", func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		for _, m := range st.Machines {
			if m.Name == "web" && m.PointTime != nil && m.PointTime.After(t0) {
				return nil
			}
		}
		return fmt.Errorf("no new point: %+v", st.Machines)
	})
}

// checkDrillCopy asks the test copy, inside the isolated test network of
// the recovery host (its namespace seen through the container's /run),
// for the data written at the primary.
func (s *twoSites) checkDrillCopy() {
	s.t.Helper()
	id, err := os.ReadFile(filepath.Join(s.roots["recovery"], "var/lib/haven/server/host/host-id"))
	if err != nil {
		s.t.Fatal(err)
	}
	ns := fmt.Sprintf("/proc/%d/root/run/netns/%s-test", s.hosts["recovery"].leader, strings.TrimSpace(string(id)))
	out, err := exec.Command("nsenter", "--net="+ns, "curl", "-sS", "--max-time", "5", "http://10.2.0.20/read?path=/before").CombinedOutput()
	if err != nil || string(out) != "before-disaster" {
		s.t.Fatalf("the drill's copy in %s: %q %v", ns, out, err)
	}
}

// curl runs curl in the customer's namespace.
func (s *twoSites) curl(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", s.lab.ns["client"], "curl", "-fsS", "--max-time", "5"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (s *twoSites) mustCurl(args ...string) string {
	s.t.Helper()
	out, err := s.curl(args...)
	if err != nil {
		s.t.Fatalf("curl %v: %v: %s", args, err, out)
	}
	return out
}

func (s *twoSites) waitBody(what, url, want string) {
	s.t.Helper()
	waitFor(s.t, what, func() error {
		out, err := s.curl(url)
		if err != nil || out != want {
			return fmt.Errorf("%s: %q %v", url, out, err)
		}
		return nil
	})
}

// waitDNS asks haven dns from the customer's namespace.
func (s *twoSites) waitDNS(want string) {
	s.t.Helper()
	waitFor(s.t, "DNS answers "+want, func() error {
		out, err := exec.Command("ip", "netns", "exec", s.lab.ns["client"], "dig", "+short", "+time=1", "+tries=1",
			"@203.0.113.7", "www.shop.example.com", "A").CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			return fmt.Errorf("dig: %q %v", got, err)
		}
		return nil
	})
}

// powerLoss ends the container at once, as a power cut does: SIGKILL of
// its init takes every process of it down; its root stays for a reboot.
func (c *container) powerLoss(t *testing.T) {
	t.Helper()
	select {
	case <-c.exited:
		return
	default:
	}
	syscall.Kill(c.leader, syscall.SIGKILL)
	select {
	case <-c.exited:
	case <-time.After(time.Minute):
		t.Fatalf("container %s still running a minute after SIGKILL of its init", c.name)
	}
}

// docBlock is one fenced block of docs/deploy.md with attributes in its
// info string: ```sh host=recovery step=vault, ```yaml host=… file=/etc/… step=….
type docBlock struct {
	lang, step, file string
	hosts            []string
	text             string
}

func readDeployDoc(t *testing.T, path string) []docBlock {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []docBlock
	var cur *docBlock
	for _, line := range strings.SplitAfter(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line
		case strings.HasPrefix(trimmed, "```"):
			fields := strings.Fields(strings.TrimPrefix(trimmed, "```"))
			blk := docBlock{}
			for i, f := range fields {
				k, v, _ := strings.Cut(f, "=")
				switch {
				case i == 0:
					blk.lang = f
				case k == "host":
					blk.hosts = strings.Split(v, ",")
				case k == "step":
					blk.step = v
				case k == "file":
					blk.file = v
				}
			}
			if blk.step == "" {
				blk.step = "-" // shown to the reader, not run
			}
			cur = &blk
		}
	}
	if cur != nil {
		t.Fatalf("%s: unterminated code block", path)
	}
	return blocks
}

// deployLab is the network of docs/deploy.md: a router namespace joining
// the primary host (192.0.2.10), the recovery host (203.0.113.7) and a
// customer (198.51.100.20), the primary's machine network routed to the
// primary host. Every namespace is hv-prefixed and deleted at the end; the
// links live inside them and go with them.
type deployLab struct {
	ns map[string]string
}

func newDeployLab(t *testing.T) *deployLab {
	t.Helper()
	id := "hv" + strings.ToLower(rand.Text()[:6])
	l := &deployLab{ns: map[string]string{}}
	for _, n := range []string{"wan", "primary", "recovery", "client"} {
		l.ns[n] = id + "-" + n[:3]
		ipCmd(t, "netns", "add", l.ns[n])
		name := l.ns[n]
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v %s", name, err, out)
			}
		})
		ipCmd(t, "-n", l.ns[n], "link", "set", "lo", "up")
	}
	wan := l.ns["wan"]
	for _, h := range []struct{ name, router, addr string }{
		{"primary", "192.0.2.1", "192.0.2.10"},
		{"recovery", "203.0.113.1", "203.0.113.7"},
		{"client", "198.51.100.1", "198.51.100.20"},
	} {
		ns, link := l.ns[h.name], "to-"+h.name[:3]
		ipCmd(t, "-n", wan, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ipCmd(t, "-n", wan, "addr", "add", h.router+"/24", "dev", link)
		ipCmd(t, "-n", wan, "link", "set", link, "up")
		ipCmd(t, "-n", ns, "addr", "add", h.addr+"/24", "dev", "eth0")
		ipCmd(t, "-n", ns, "link", "set", "eth0", "up")
		ipCmd(t, "-n", ns, "route", "add", "default", "via", h.router)
	}
	ipCmd(t, "-n", wan, "route", "add", "10.1.0.0/24", "via", "192.0.2.10")
	// The primary's machine network: a bridge its host routes.
	prim := l.ns["primary"]
	ipCmd(t, "-n", prim, "link", "add", "prod", "type", "bridge")
	ipCmd(t, "-n", prim, "addr", "add", "10.1.0.1/24", "dev", "prod")
	ipCmd(t, "-n", prim, "link", "set", "prod", "up")
	for _, ns := range []string{wan, prim} {
		if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
			t.Fatalf("ip_forward in %s: %v %s", ns, err, out)
		}
	}
	return l
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v\n%s", args, err, out)
	}
}
