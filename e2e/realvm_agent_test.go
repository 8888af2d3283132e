package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/vault"
)

// rvAgent is a real `haven agent run` protecting one running VM (machine
// vmName) with provider qemu through its QMP and guest agent sockets, into
// a file vault. Its processes are those of a bare drSite (start, kill,
// logs), without the DR site around it.
type rvAgent struct {
	t     *testing.T
	site  *drSite
	cfg   string
	addr  string
	token string

	mu    sync.Mutex
	stats map[string]agent.CycleStats // by point ID, as the status API showed them
}

const vmName = "pg"

// startAgent protects the VM whose qemu state files qmp and qga name,
// with these disk lines and policy (YAML flow maps).
func (l *rvLab) startAgent(qmp, qga, disks, policy string) *rvAgent {
	t := l.t
	s := newBareSite(t, filepath.Join(l.dir, "agent"))
	os.MkdirAll(s.dir, 0o700)
	s.env = []string{"HAVEN_VAULT=" + filepath.Join(s.dir, "vault"), "HAVEN_PASSWORD=correct horse"}
	mustHaven(t, s.env, "vault", "init")
	a := &rvAgent{t: t, site: s, addr: freeAddr(t), token: "rv-token-" + strings.Repeat("y", 24), stats: map[string]agent.CycleStats{}}
	tok := s.write("token", a.token+"\n")
	a.cfg = s.write("agent.yaml", fmt.Sprintf(`vault: %s
state_dir: %s
listen: %s
control_token_file: %s
machines:
  - name: %s
    provider: qemu
    qmp: %s
    guest_agent: %s
    disks: %s
    policy: %s
`, filepath.Join(s.dir, "vault"), filepath.Join(s.dir, "st"), a.addr, tok, vmName, qmp, qga, disks, policy))
	a.run()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go a.poll(ctx, done)
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// run starts the agent process.
func (a *rvAgent) run() { a.site.start("agent", "", "agent", "run", "--config", a.cfg) }

// restart stops the agent gracefully and starts it again on the same
// config and state.
func (a *rvAgent) restart() {
	a.site.kill("agent", syscall.SIGTERM)
	a.run()
}

// poll records the last cycle's statistics of every point the status API
// reports; cycles are seconds apart, polls 50 ms.
func (a *rvAgent) poll(ctx context.Context, done chan struct{}) {
	defer close(done)
	c := &http.Client{Timeout: 2 * time.Second}
	for ctx.Err() == nil {
		if resp, err := c.Get("http://" + a.addr + "/v1/status"); err == nil {
			var rep agent.Report
			if json.NewDecoder(resp.Body).Decode(&rep) == nil {
				for _, m := range rep.Machines {
					if m.LastPoint != nil && m.LastCycle != nil {
						a.mu.Lock()
						a.stats[m.LastPoint.ID] = *m.LastCycle
						a.mu.Unlock()
					}
				}
			}
			resp.Body.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cycle is the statistics of the cycle that made point id.
func (a *rvAgent) cycle(id string) agent.CycleStats {
	a.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.mu.Lock()
		st, ok := a.stats[id]
		a.mu.Unlock()
		if ok {
			return st
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("the status API never reported point %s as the last one", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// points lists the VM's points in the vault, oldest first.
func (a *rvAgent) points() []vault.Point {
	a.t.Helper()
	var ps []vault.Point
	out := mustHaven(a.t, a.site.env, "vault", "points", "--machine", vmName, "--json")
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		a.t.Fatalf("points: %v\n%s", err, out)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Time.Before(ps[j].Time) })
	return ps
}

// waitPoint waits for the first point after `after` that ok accepts.
func (a *rvAgent) waitPoint(what string, after time.Time, ok func(vault.Point) bool) vault.Point {
	a.t.Helper()
	var found vault.Point
	a.site.eventually(2*time.Minute, what, func() error {
		for _, p := range a.points() {
			if p.Time.After(after) && ok(p) {
				found = p
				return nil
			}
		}
		return errNoPoint
	})
	return found
}

// firstAfter is the first point taken after t, whatever it is.
func (a *rvAgent) firstAfter(what string, t time.Time) vault.Point {
	return a.waitPoint(what, t, func(vault.Point) bool { return true })
}

// snapshot takes a point now through the control API and returns it.
func (a *rvAgent) snapshot() vault.Point {
	a.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.addr+"/v1/machines/"+vmName+"/snapshot", nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		a.t.Fatalf("snapshot: %v", err)
	}
	defer resp.Body.Close()
	var res agent.SnapshotResult
	json.NewDecoder(resp.Body).Decode(&res)
	id := res.Points[vmName]
	if resp.StatusCode != 200 || id == "" {
		a.t.Fatalf("snapshot: %s %+v\nagent log:\n%s", resp.Status, res, a.site.log("agent"))
	}
	for _, p := range a.points() {
		if p.ID == id {
			return p
		}
	}
	a.t.Fatalf("point %s is not in the vault", id)
	return vault.Point{}
}

// restore writes disk of point p to a new raw file with `haven restore`.
func (a *rvAgent) restore(p vault.Point, disk, name string) string {
	a.t.Helper()
	to := filepath.Join(a.site.dir, name+".img")
	mustHaven(a.t, a.site.env, "restore", "--machine", vmName, "--point", p.ID, "--disk", disk, "--to", to)
	return to
}

func (a *rvAgent) waitUp() {
	a.site.eventually(time.Minute, "agent answers", func() error {
		resp, err := http.Get("http://" + a.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
}
