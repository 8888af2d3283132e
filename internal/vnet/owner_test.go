package vnet_test

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// TestOwnerAlive: this process is alive; the same pid with another start
// time (a reused pid) is not; a child is alive while it runs, and not once
// it has exited, as a zombie or reaped.
func TestOwnerAlive(t *testing.T) {
	self := vnet.Self()
	if self.PID != os.Getpid() || !self.Alive() {
		t.Fatalf("self %v not alive", self)
	}
	if (vnet.Owner{PID: self.PID, Start: self.Start + 1}).Alive() {
		t.Fatal("a reused pid counted as the owner")
	}
	if o, err := vnet.ParseOwner(self.String()); err != nil || o != self {
		t.Fatalf("record round trip: %v %v", o, err)
	}
	cmd := exec.Command(testenv.LookPath(t, "cat")) // runs until its stdin closes
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	child, ok := vnet.OwnerOf(cmd.Process.Pid)
	if !ok || !child.Alive() {
		t.Fatalf("running child %v not alive", child)
	}
	stdin.Close()
	waitZombie(t, cmd.Process.Pid)
	if child.Alive() {
		t.Fatal("exited (zombie) child counted as alive")
	}
	cmd.Wait()
	if child.Alive() {
		t.Fatal("reaped child counted as alive")
	}
}

// waitZombie waits until pid has exited but is not yet reaped.
func waitZombie(t *testing.T, pid int) {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, ok := vnet.OwnerOf(pid); !ok {
			return
		}
	}
	t.Fatalf("child %d did not exit", pid)
}
