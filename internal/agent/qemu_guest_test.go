package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/vault"
)

// fakeGuestAgent answers guest-sync-delimited and freeze/thaw on a unix
// socket (no guest OS here), recording the commands; freeze fails when
// failFreeze is set.
type fakeGuestAgent struct {
	mu         sync.Mutex
	log        []string
	failFreeze bool
}

func (g *fakeGuestAgent) serve(t *testing.T) string {
	sock := filepath.Join(t.TempDir(), "qga.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go g.conn(c)
		}
	}()
	return sock
}

func (g *fakeGuestAgent) conn(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var req struct {
			Execute   string
			Arguments struct{ ID int64 }
		}
		json.Unmarshal(bytes.TrimLeft(line, "\xff"), &req)
		g.mu.Lock()
		g.log = append(g.log, req.Execute)
		fail := g.failFreeze
		g.mu.Unlock()
		switch {
		case req.Execute == "guest-sync-delimited":
			b, _ := json.Marshal(map[string]int64{"return": req.Arguments.ID})
			c.Write(append(append([]byte{0xff}, b...), '\n'))
		case req.Execute == "guest-fsfreeze-freeze" && fail:
			c.Write([]byte(`{"error": {"class": "GenericError", "desc": "hv: fsfreeze hook failed"}}` + "\n"))
		default:
			c.Write([]byte(`{"return": 1}` + "\n"))
		}
	}
}

func (g *fakeGuestAgent) take() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.log
	g.log = nil
	return l
}

// TestQemuGuestFreeze: with a guest agent, the guest is frozen only
// around the fleecing transaction (thawed before the read) and the point
// is app-consistent; a failed freeze gives a crash-consistent point that
// says why.
func TestQemuGuestFreeze(t *testing.T) {
	dir := t.TempDir()
	vm := startVM(t, mkDisk(t, dir, "disk0", "raw", 8<<20))
	v := newVault(t, nil)
	ga := &fakeGuestAgent{}
	a := newAgent(qemuConfig(t, vm, "    guest_agent: "+ga.serve(t)+"\n"), v)
	var atRead []string
	a.afterCapture = func() { atRead = ga.take() }
	_, p := qemuCycle(t, a, v, "app", map[string][]byte{"disk0": vm.content(0)})
	if p.Consistency != vault.AppConsistent {
		t.Fatalf("consistency %s, tags %v", p.Consistency, p.Tags)
	}
	if want := "guest-sync-delimited guest-fsfreeze-freeze guest-fsfreeze-thaw"; strings.Join(atRead, " ") != want {
		t.Fatalf("before the read the guest agent saw %q, want %q", strings.Join(atRead, " "), want)
	}
	ga.mu.Lock()
	ga.failFreeze = true
	ga.mu.Unlock()
	a.groups[0].lastApp = time.Time{} // the next cycle is an app one again
	_, p = qemuCycle(t, a, v, "freeze fails", map[string][]byte{"disk0": vm.content(0)})
	if p.Consistency != vault.CrashConsistent || p.Tags["guest_freeze_error"] == "" {
		t.Fatalf("consistency %s, tags %v", p.Consistency, p.Tags)
	}
}
