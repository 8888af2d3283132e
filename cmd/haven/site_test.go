package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// ownerEnv makes this test binary act as a Haven that owns site resources:
// it creates namespace NAME and claims machine state directory DIR/NAME
// through the real code paths, says "ready", and holds them until its
// stdin closes; then it exits without cleaning up, as a crash would.
const ownerEnv = "HAVEN_TEST_SITE_OWNER"

func init() {
	spec := os.Getenv(ownerEnv)
	if spec == "" {
		return
	}
	name, dir, _ := strings.Cut(spec, " ")
	err := vnet.Netlink{}.AddNS(name)
	if err == nil {
		err = machine.ClaimStateDir(filepath.Join(dir, name))
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

type owner struct {
	cmd   *exec.Cmd
	stdin io.Closer
}

// startOwner runs an owner process for namespace name and state dir/name.
func startOwner(t *testing.T, name, dir string) *owner {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), ownerEnv+"="+name+" "+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		vnet.Netlink{}.DelNS(name)
	})
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("owner of %s: %q", name, line)
	}
	return &owner{cmd, stdin}
}

// exit ends the owner as a crash would: its resources stay behind.
func (o *owner) exit(t *testing.T) {
	o.stdin.Close()
	if err := o.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func siteCleanup(prefix, dir string, force bool) (string, error) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	args := []string{"site", "cleanup", "--prefix", prefix, "--loop-prefix", prefix,
		"--ns-state", filepath.Join(dir, "ns"), "--qemu-state", filepath.Join(dir, "qemu")}
	if force {
		args = append(args, "--force")
	}
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// TestSiteCleanupSparesLiveOwner: `haven site cleanup` removes the
// namespace and machine state of a Haven that exited, refuses those of one
// still running (naming its pid, failing), and removes them with --force.
func TestSiteCleanupSparesLiveOwner(t *testing.T) {
	testenv.RequireRoot(t)
	prefix, dir := vnet.NewID(), t.TempDir()
	state := filepath.Join(dir, "ns")
	live := startOwner(t, prefix+"-live", state)
	startOwner(t, prefix+"-dead", state).exit(t)

	out, err := siteCleanup(prefix, dir, false)
	if !errors.Is(err, vnet.ErrOwned) {
		t.Fatalf("cleanup with a live owner: %v\n%s", err, out)
	}
	pid := fmt.Sprintf("pid %d", live.cmd.Process.Pid)
	for _, want := range []string{"netns " + prefix + "-live", "machine " + prefix + "-live"} {
		if !strings.Contains(err.Error(), want+": "+vnet.ErrOwned.Error()+" ("+pid+")") {
			t.Errorf("error does not name %s owned by %s: %v", want, pid, err)
		}
	}
	for _, want := range []string{"removed netns " + prefix + "-dead", "removed machine " + prefix + "-dead"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q: %q", want, out)
		}
	}
	mustExist(t, true, "/run/netns/"+prefix+"-live", filepath.Join(state, prefix+"-live"))
	mustExist(t, false, "/run/netns/"+prefix+"-dead", filepath.Join(state, prefix+"-dead"))

	out, err = siteCleanup(prefix, dir, true)
	if err != nil || !strings.Contains(out, "removed netns "+prefix+"-live") || !strings.Contains(out, "removed machine "+prefix+"-live") {
		t.Fatalf("forced cleanup: %v\n%s", err, out)
	}
	mustExist(t, false, "/run/netns/"+prefix+"-live", filepath.Join(state, prefix+"-live"))
}

func mustExist(t *testing.T, want bool, paths ...string) {
	t.Helper()
	for _, p := range paths {
		_, err := os.Stat(p)
		if got := err == nil; got != want || (err != nil && !errors.Is(err, os.ErrNotExist)) {
			t.Errorf("%s: exists=%v, want %v (%v)", p, got, want, err)
		}
	}
}
