package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/testenv/debimage"
	"github.com/haven-dr/haven/packaging"
)

// TestDebianPackage builds the .deb, installs it with dpkg inside the
// Debian test image booted under systemd (systemd-nspawn, private network),
// enables haven-dns, haven-server, haven-agent and haven-host with small
// configs (haven host's example as shipped), and
// checks each runs as the user its unit says, answers, comes back after
// `systemctl restart` and after SIGKILL of its main process (Restart=), and
// logs to the journal.
func TestDebianPackage(t *testing.T) {
	img := debimage.Require(t)
	for _, tool := range []string{"systemd-nspawn", "nsenter", "dig", "curl"} {
		testenv.LookPath(t, tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	deb, err := packaging.Build(ctx, packaging.Options{OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	root := mountImageRoot(t, img)
	copyInto(t, deb, filepath.Join(root, "root/haven.deb"))
	c := bootContainer(t, root)

	c.mustRun(t, "dpkg", "-i", "/root/haven.deb")
	if out := c.mustRun(t, "getent", "passwd", "haven"); !strings.Contains(out, "/usr/sbin/nologin") {
		t.Fatalf("postinst made no haven system user: %q", out)
	}
	for _, u := range []string{"haven-dns", "haven-server", "haven-agent", "haven-host"} {
		// Installed, not enabled: the example configs need editing first.
		if out, _ := c.run("systemctl", "is-enabled", u); out != "disabled" {
			t.Fatalf("%s after install: is-enabled %q, want disabled", u, out)
		}
	}
	if out := c.mustRun(t, "haven", "version"); !strings.Contains(out, "haven 0.0.0~git") {
		t.Fatalf("haven version in the package: %q", out)
	}
	writePackageConfigs(t, c, root)
	c.mustRun(t, "systemctl", "enable", "--now", "haven-dns", "haven-server", "haven-agent", "haven-host")

	checks := map[string]func(t *testing.T){
		"haven-dns":    func(t *testing.T) { c.waitDig(t) },
		"haven-server": func(t *testing.T) { c.waitHTTP(t, "http://127.0.0.1:7780/healthz") },
		"haven-agent":  func(t *testing.T) { c.waitAgentPoint(t) },
		"haven-host":   func(t *testing.T) { c.waitHostInfo(t, root) },
	}
	users := map[string]string{"haven-dns": "haven", "haven-server": "root", "haven-agent": "root", "haven-host": "root"}
	for _, u := range []string{"haven-dns", "haven-server", "haven-agent", "haven-host"} {
		t.Run(u, func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					st, _ := c.run("systemctl", "status", "--no-pager", "-l", "-n", "40", u)
					t.Logf("%s", st)
				}
			})
			c.waitActive(t, u)
			pid := c.mainPID(t, u)
			if got := c.procUser(t, pid); got != users[u] {
				t.Fatalf("%s runs as %q, want %q", u, got, users[u])
			}
			checks[u](t)

			c.mustRun(t, "systemctl", "restart", u)
			pid2 := c.waitNewPID(t, u, pid)
			checks[u](t)

			c.mustRun(t, "kill", "-9", strconv.Itoa(pid2))
			c.waitNewPID(t, u, pid2)
			c.waitActive(t, u)
			checks[u](t)
			if n := c.mustRun(t, "systemctl", "show", "-P", "NRestarts", u); n == "0" {
				t.Fatalf("%s: NRestarts 0 after SIGKILL: not restarted by Restart=", u)
			}
			// Lines haven itself wrote (not systemd's about the unit), from
			// the three processes the unit ran.
			if out := c.mustRun(t, "journalctl", "--no-pager", "-q", "-o", "cat",
				"_SYSTEMD_UNIT="+u+".service", "_COMM=haven"); out == "" {
				t.Fatalf("the journal has no lines from %s", u)
			}
		})
	}
	// The dns unit's capability is what lets a non-root user bind port 53.
	if out := c.mustRun(t, "grep", "CapEff", "/proc/"+strconv.Itoa(c.mainPID(t, "haven-dns"))+"/status"); !strings.HasSuffix(out, "0000000000000400") {
		t.Fatalf("haven-dns effective capabilities %q, want CAP_NET_BIND_SERVICE only", out)
	}
}

// writePackageConfigs replaces the example configs with ones that work in
// the container: DNS on port 53 of its loopback, server and agent on a file
// vault it holds, the agent protecting one small disk image.
func writePackageConfigs(t *testing.T, c *container, root string) {
	t.Helper()
	files := map[string]string{
		"etc/haven/vault.password": "package-test-password\n",
		"etc/haven/dns.yaml": `listen: 127.0.0.1:53
api: 127.0.0.1:8053
api_token_file: /var/lib/haven/dns/api-token
state_file: /var/lib/haven/dns/state.json
zones:
  - name: pkg.test
    records:
      - {name: www, type: A, value: 192.0.2.80}
`,
		"etc/haven/server.yaml": `listen: 127.0.0.1:7780
state_dir: /var/lib/haven/server
vault: file:///var/lib/haven/vault
password_file: /etc/haven/vault.password
`,
		"etc/haven/agent.yaml": `vault: file:///var/lib/haven/vault
password_file: /etc/haven/vault.password
state_dir: /var/lib/haven/agent
listen: 127.0.0.1:7717
machines:
  - name: disk1
    provider: none
    disks: [{name: root, path: /srv/disk1.img}]
    policy: {frequency: 15s}
`,
	}
	for rel, body := range files {
		// Truncating keeps the mode and owner the package gave the file:
		// haven dns must read its config as installed.
		if err := os.WriteFile(filepath.Join(root, rel), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.mustRun(t, "mkdir", "-p", "/srv")
	c.mustRun(t, "dd", "if=/dev/urandom", "of=/srv/disk1.img", "bs=1M", "count=4", "status=none")
	c.mustRun(t, "env", "HAVEN_PASSWORD=package-test-password", "haven", "vault", "init", "--vault", "file:///var/lib/haven/vault")
}

// container is a Debian image booted under systemd-nspawn.
type container struct {
	leader int // the container's PID 1 (systemd), seen from the host
	name   string
	root   string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncBuf
}

// bootContainer boots root under systemd-nspawn with a private network (only
// its loopback) and waits until systemd reports the boot finished.
func bootContainer(t *testing.T, root string) *container {
	t.Helper()
	c := startContainer(t, root, nil, "--private-network")
	c.waitBooted(t)
	return c
}

// startContainer starts systemd-nspawn --boot on root with the given
// network (and other) options and nspawn's environment env added to the
// test's; cleanup powers it off (SIGTERM to nspawn: an
// orderly shutdown) or kills it. Several may boot at once: waitBooted each.
func startContainer(t *testing.T, root string, env []string, opts ...string) *container {
	t.Helper()
	c := &container{name: "hv" + strings.ToLower(rand.Text()[:8]), root: root, log: &syncBuf{}, exited: make(chan struct{})}
	args := append([]string{"--quiet", "--boot", "--register=no", "--keep-unit",
		"--console=read-only", "--machine=" + c.name, "--directory=" + root}, opts...)
	c.cmd = exec.Command("systemd-nspawn", args...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if cg := containerCgroup(t, c.name); cg != nil {
		c.cmd.SysProcAttr.UseCgroupFD, c.cmd.SysProcAttr.CgroupFD = true, int(cg.Fd())
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("container %s console:\n%s", c.name, testenv.Tail([]byte(c.log.String())))
		}
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(time.Minute):
			t.Errorf("container %s did not power off within a minute; killing it", c.name)
			syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			killUnder(root)
			<-c.exited
		}
	})
	return c
}

// waitBooted waits until systemd in the container reports the boot
// finished.
func (c *container) waitBooted(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		// nspawn's first child forks the container's PID 1 and exits: look
		// again until systemd itself is found.
		c.leader = containerInit(c.cmd.Process.Pid)
		out, _ := c.run("systemctl", "is-system-running")
		if out == "running" || out == "degraded" {
			return
		}
		select {
		case <-c.exited:
			t.Fatalf("nspawn exited during boot:\n%s", testenv.Tail([]byte(c.log.String())))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("container not booted after 3m (is-system-running %q):\n%s", out, testenv.Tail([]byte(c.log.String())))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// run runs a command in every namespace of the container (nsenter -a), as
// root with systemd's environment; it returns trimmed combined output.
func (c *container) run(args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.leader), "-a", "--"}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (c *container) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(args...)
	if err != nil {
		t.Fatalf("in container: %v: %v\n%s", args, err, out)
	}
	return out
}

// waitFor retries f for up to a minute; its last error fails the test.
func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (c *container) waitActive(t *testing.T, unit string) {
	t.Helper()
	waitFor(t, unit+" active", func() error {
		out, _ := c.run("systemctl", "is-active", unit)
		if out != "active" {
			st, _ := c.run("systemctl", "status", "--no-pager", "-l", unit)
			return fmt.Errorf("is-active %q\n%s", out, st)
		}
		return nil
	})
}

func (c *container) mainPID(t *testing.T, unit string) int {
	t.Helper()
	pid, err := strconv.Atoi(c.mustRun(t, "systemctl", "show", "-P", "MainPID", unit))
	if err != nil || pid == 0 {
		t.Fatalf("%s: no main PID (%v)", unit, err)
	}
	return pid
}

// waitNewPID waits until the unit runs again under a main PID other than old.
func (c *container) waitNewPID(t *testing.T, unit string, old int) int {
	t.Helper()
	var pid int
	waitFor(t, unit+" back with a new main PID", func() error {
		out, _ := c.run("systemctl", "show", "-P", "MainPID", unit)
		pid, _ = strconv.Atoi(out)
		if pid == 0 || pid == old {
			return fmt.Errorf("main PID %q (was %d)", out, old)
		}
		return nil
	})
	return pid
}

func (c *container) procUser(t *testing.T, pid int) string {
	t.Helper()
	return c.mustRun(t, "ps", "-o", "user=", "-p", strconv.Itoa(pid))
}

// waitDig asks haven dns inside the container, from the host's dig in the
// container's network namespace only (nsenter -n): its loopback port 53.
func (c *container) waitDig(t *testing.T) {
	t.Helper()
	waitFor(t, "haven dns answers", func() error {
		out, err := c.inNet("dig", "+short", "+time=1", "+tries=1", "@127.0.0.1", "-p", "53", "www.pkg.test", "A")
		if err != nil || out != "192.0.2.80" {
			return fmt.Errorf("dig www.pkg.test: %q %v", out, err)
		}
		return nil
	})
}

func (c *container) waitHTTP(t *testing.T, url string) {
	t.Helper()
	waitFor(t, "GET "+url, func() error {
		out, err := c.inNet("curl", "-fsS", "--max-time", "2", url)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
}

// waitHostInfo waits for haven host's API, as its example config says
// (unchanged): HTTPS with the CA and the token it made at its first start.
func (c *container) waitHostInfo(t *testing.T, root string) {
	t.Helper()
	dir := filepath.Join(root, "var/lib/haven/host")
	waitFor(t, "haven host /v1/info", func() error {
		tok, err := os.ReadFile(filepath.Join(dir, "token"))
		if err != nil {
			return err
		}
		out, err := c.inNet("curl", "-fsS", "--max-time", "2", "--cacert", filepath.Join(dir, "tls", "ca.crt"),
			"-H", "Authorization: Bearer "+strings.TrimSpace(string(tok)), "https://127.0.0.1:7443/v1/info")
		if err != nil || !strings.Contains(out, `"id":"hv`) {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
}

// waitAgentPoint waits for the agent's status API, then for a recovery
// point of disk1 in the vault: the agent does its job, not just listens.
func (c *container) waitAgentPoint(t *testing.T) {
	t.Helper()
	c.waitHTTP(t, "http://127.0.0.1:7717/v1/status")
	waitFor(t, "a recovery point of disk1", func() error {
		out, err := c.run("env", "HAVEN_PASSWORD=package-test-password", "haven", "vault", "points",
			"--vault", "file:///var/lib/haven/vault", "--machine", "disk1")
		if err != nil || !strings.Contains(out, "disk1") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
}

// inNet runs a host binary in the container's network namespace only.
func (c *container) inNet(args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.leader), "-n", "--"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// mountImageRoot mounts the root partition of a private copy of the image
// (loop device over its byte range), unmounted when the test ends.
func mountImageRoot(t *testing.T, img debimage.Image) string {
	t.Helper()
	disk := debimage.Copy(t, img)
	mnt := filepath.Join(t.TempDir(), "hvroot")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("loop,offset=%d,sizelimit=%d", img.RootOffset, img.RootSize)
	if out, err := exec.Command("mount", "-t", "ext4", "-o", opts, disk, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount root partition: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			exec.Command("umount", "-l", mnt).Run()
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	return mnt
}

func copyInto(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(dst, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// containerInit returns the container's PID 1 as the host sees it: the
// descendant of nspawn named systemd, or 0.
func containerInit(pid int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(b)) {
			child, _ := strconv.Atoi(field)
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child)); strings.TrimSpace(string(comm)) == "systemd" {
				return child
			}
			if n := containerInit(child); n != 0 {
				return n
			}
		}
	}
	return 0
}

// killUnder kills every process whose root is inside root, so its mount can go.
func killUnder(root string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/root")
	for _, p := range procs {
		if r, err := os.Readlink(p); err == nil && (r == root || strings.HasPrefix(r, root+"/")) {
			var pid int
			fmt.Sscanf(p, "/proc/%d/root", &pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// syncBuf is an io.Writer several goroutines may write while a test reads it.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// containerCgroup makes a cgroup of the container's own, named like it, on
// the host's cgroup2 hierarchy, and opens it for nspawn to be started in
// (CLONE_INTO_CGROUP). With --keep-unit nspawn puts the container in a
// "payload" child of its own cgroup, so two containers started from the
// test process would otherwise share one tree, and their systemds each
// other's cgroups; and whatever the container's machines leave in it goes
// with it. Removed at the end (after the container: registered first).
// Nil where the host has no cgroup2 hierarchy.
func containerCgroup(t *testing.T, name string) *os.File {
	t.Helper()
	root := cgroup2Mount()
	if root == "" {
		return nil
	}
	path := filepath.Join(root, name)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// On a hybrid host nspawn mirrors the tree in the name=systemd
		// hierarchy: that copy goes too.
		for _, m := range cgroupMounts() {
			if err := removeCgroupTree(filepath.Join(m, name)); err != nil {
				t.Errorf("container cgroup: %v", err)
			}
		}
	})
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// cgroup2Mount is where the host's cgroup2 hierarchy is mounted (on a
// hybrid host the unified one), or "".
func cgroup2Mount() string {
	if m := cgroupMountsOf("cgroup2 "); len(m) > 0 {
		return m[0]
	}
	return ""
}

// cgroupMounts are the mount points of every cgroup hierarchy, v1 and v2.
func cgroupMounts() []string { return cgroupMountsOf("cgroup") }

// cgroupMountsOf lists the root mounts of hierarchies whose mountinfo
// type field starts with fstype.
func cgroupMountsOf(fstype string) []string {
	var out []string
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		fields := strings.Fields(pre)
		if ok && strings.HasPrefix(post, fstype) && len(fields) >= 5 && fields[3] == "/" {
			out = append(out, fields[4])
		}
	}
	return out
}

// removeCgroupTree removes a cgroup and its children, deepest first; the
// kernel empties a cgroup a moment after its last process died, so each
// removal is retried for a few seconds.
func removeCgroupTree(path string) error {
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	var dirs []string
	filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := syscall.Rmdir(dirs[i])
			if err == nil || err == syscall.ENOENT {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("rmdir %s: %w", dirs[i], err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}
