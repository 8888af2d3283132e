package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// TestRecoveryFromRansomware is the whole story of issue 17: the shop's
// db and web are protected by a real agent and server, the vault on
// `haven vault serve` with the agent holding only an agent token (the
// server, the control plane, holds the admin token). Orders are written
// into db, each fsynced and acknowledged, its time noted. The attacker
// then owns the primary host: with the agent's environment (vault URL,
// token, password) it prunes, re-keys, deletes and overwrites every
// object of the vault: all refused or harmless. It encrypts the order
// files in place through the machine's root (openssl, dd conv=notrunc).
// The detector's defaults stand: the orders are enough data (over
// 2×min_bytes, so one cycle carries at least 8 MiB of it) for the
// default thresholds. The server alerts; the operator runs a test
// failover to the last clean point, checks the orders in the test copy
// through the isolated test network, cleans it up, isolates the primary
// and fails over for real to the last clean point, and checks the orders
// on the recovered db from the customers' network. Every order
// acknowledged before the last clean point's capture is there intact, and
// that point is the newest taken before the attack (or later): nothing
// acknowledged before the attack is lost beyond one point interval.
// Finally `haven vault check --read-data` with the admin token finds
// every object and point intact, every pre-attack object unchanged.
func TestRecoveryFromRansomware(t *testing.T) {
	testenv.LookPath(t, "openssl")
	var sv *servedVault
	s := newDRSiteOn(t, func(t *testing.T) ([]string, []string) {
		sv = newServedVault(t)
		return sv.env(sv.agentTok), sv.env(sv.adminTok)
	})
	ctx := context.Background()
	adminEnv := sv.env(sv.adminTok)
	s.apply()

	// The shop at work: orders until the detector has its baseline
	// (first point plus warm-up cycles) and the orders hold enough data.
	const orderSize = 64 << 10
	const enough, most = 20 << 20, 26 << 20 // the machine's 48 MB root holds them
	var acked []time.Time                   // acked[n]: order n acknowledged
	for n := 0; ; n++ {
		if written := len(acked) * orderSize; written >= enough && s.dbPoints(ctx) >= 5 {
			break
		} else if written >= most {
			time.Sleep(time.Second)
			continue
		}
		if _, err := s.http(s.primNS, "POST", "http://10.1.0.10/write?path=/"+orderName(len(acked)), orderBody(len(acked), orderSize)); err != nil {
			t.Fatalf("order %d: %v", len(acked), err)
		}
		acked = append(acked, time.Now())
	}
	admin := openEnv(t, adminEnv)
	before := inventory(t, admin)

	// The attacker holds the primary's everything.
	attackObjects(t, attackVault{agentEnv: s.env, adminEnv: adminEnv})
	attackStart := time.Now()
	pid := guestPID(t, s, "db")
	enc := exec.Command("bash", "-c", `set -e
key=$(openssl rand -hex 32); iv=$(openssl rand -hex 16)
for f in "$1"/order-*; do
  openssl enc -aes-256-ctr -K "$key" -iv "$iv" -in "$f" | dd of="$f" conv=notrunc status=none
done`, "ransom", fmt.Sprintf("/proc/%d/root", pid))
	if out, err := enc.CombinedOutput(); err != nil {
		t.Fatalf("encryption: %v\n%s", err, out)
	}
	if out, err := s.http(s.primNS, "GET", "http://10.1.0.10/read?path=/"+orderName(0), ""); err != nil || out == orderBody(0, orderSize) {
		t.Fatalf("order 0 on the primary is not encrypted: %v", err)
	}

	// Haven alerts.
	var alert api.EncryptionAlert
	s.eventually(5*time.Minute, "the encryption alert", func() error {
		st, err := s.client.Status(ctx)
		if err != nil {
			return err
		}
		for _, m := range st.Machines {
			for _, a := range m.Encryption {
				if m.Name == "db" && a.Open {
					alert = a
					return nil
				}
			}
		}
		return fmt.Errorf("no open encryption alert")
	})
	if st := mustHaven(t, s.serverEnv(), "status"); !strings.Contains(st, "last clean point "+alert.LastClean) {
		t.Fatalf("haven status does not name the last clean point %s:\n%s", alert.LastClean, st)
	}
	points := s.vaultPoints(adminEnv)
	clean, ok := points[alert.LastClean]
	if !ok {
		t.Fatalf("alert %+v names a last clean point not in the vault", alert)
	}
	// No point between the last clean one and the attack was given up.
	for id, at := range points {
		if at.After(clean) && at.Before(attackStart) {
			t.Errorf("point %s (%s) taken before the attack (%s) is newer than the last clean point %s", id, at, attackStart, alert.LastClean)
		}
	}
	// wantOrders: every order acknowledged before the last clean point's
	// capture must be in it (the ones after it, before the attack, are the
	// at most one interval that may be lost); every order there intact.
	wantOrders := func(ns, addr string) {
		t.Helper()
		got := 0
		for n, at := range acked {
			out, err := s.http(ns, "GET", "http://"+addr+"/read?path=/"+orderName(n), "")
			switch {
			case err == nil && out == orderBody(n, orderSize):
				got++
			case err == nil:
				t.Errorf("order %d on %s is not what was acknowledged (encrypted?)", n, addr)
			case !at.After(clean):
				t.Errorf("order %d acknowledged at %s, before the last clean point %s at %s, is lost: %v", n, at, alert.LastClean, clean, err)
			}
		}
		t.Logf("%s: %d of %d orders, the last clean point %s at %s; the attack began at %s", addr, got, len(acked), alert.LastClean, clean, attackStart)
	}

	// Test failover to the last clean point, checked in the test network.
	trep, r := s.runJob("failover", "test", "--plan", "shop", "--point", "last-clean")
	if r.code != 0 || trep.State != string(store.Succeeded) {
		t.Fatalf("test failover to last-clean: exit %d %s: %s\n%s", r.code, trep.State, trep.Error, s.log("server"))
	}
	s.checkPoint(t, trep, alert.LastClean)
	wantOrders(s.hostID()+"-test", "10.2.0.10")
	if crep, r := s.runJob("failover", "cleanup", "--plan", "shop"); r.code != 0 || crep.State != string(store.Succeeded) {
		t.Fatalf("test cleanup: exit %d %s: %s", r.code, crep.State, crep.Error)
	}

	// The operator takes the compromised primary off the network and
	// fails over for real to the last clean point.
	s.disaster(t)
	rep, r := s.runJob("failover", "unplanned", "--plan", "shop", "--point", "last-clean")
	if r.code != 0 || rep.State != string(store.Succeeded) {
		t.Fatalf("failover to last-clean: exit %d %s: %s\n%s", r.code, rep.State, rep.Error, s.log("server"))
	}
	s.checkPoint(t, rep, alert.LastClean)
	wantOrders(s.inet, "10.2.0.10")
	if err := s.expectDNS("10.2.0.20"); err != nil {
		t.Fatal(err)
	}

	// Every object written before the attack is unchanged, and check with
	// the admin token finds the vault intact (the attacker's key is one
	// more key, not damage).
	after := inventory(t, admin)
	for name, sum := range before {
		if after[name] != sum {
			t.Errorf("object %s changed or vanished in the attack", name)
		}
	}
	if r := haven(t, adminEnv, "vault", "check", "--read-data"); r.code != 0 || strings.Contains(r.stdout, "error:") {
		t.Errorf("vault check after the attack: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func orderName(n int) string { return fmt.Sprintf("order-%06d", n) }

// orderBody is order n's content: text, compressible as a database's
// rows are, so the orders themselves never look like encryption.
func orderBody(n, size int) string {
	line := fmt.Sprintf("order %06d: 3 x widget, ship to 42 Harbour Road, paid\n", n)
	return strings.Repeat(line, size/len(line)+1)[:size]
}

// dbPoints is how many points of db the server knows.
func (s *drSite) dbPoints(ctx context.Context) int {
	st, err := s.client.Status(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, m := range st.Machines {
		if m.Name == "db" {
			return m.Points
		}
	}
	return 0
}

// vaultPoints is db's points with their capture instants.
func (s *drSite) vaultPoints(env []string) map[string]time.Time {
	var ps []struct {
		ID   string    `json:"id"`
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal([]byte(mustHaven(s.t, env, "vault", "points", "--machine", "db", "--json")), &ps); err != nil {
		s.t.Fatal(err)
	}
	out := map[string]time.Time{}
	for _, p := range ps {
		out[p.ID] = p.Time
	}
	return out
}

// checkPoint: the job brought db back from point want.
func (s *drSite) checkPoint(t *testing.T, rep *orchestrator.Report, want string) {
	t.Helper()
	for _, p := range rep.Points {
		if p.Machine == "db" && p.Point != want {
			t.Errorf("%s brought db back from %s, want the last clean point %s", rep.Type, p.Point, want)
		}
	}
	if len(rep.Points) != 2 {
		t.Errorf("%s points: %+v", rep.Type, rep.Points)
	}
}

// guestPID is the pid of a primary machine's init: the attacker on the
// host reaches the machine's files through /proc/PID/root.
func guestPID(t *testing.T, s *drSite, name string) int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.dir, "prim-machines", name, "pid"))
	more, _ := filepath.Glob(filepath.Join(s.dir, "prim-machines", "*", name, "pid"))
	files = append(files, more...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		o, err := vnet.ParseOwner(string(b))
		if err == nil && o.Alive() {
			return o.PID
		}
	}
	t.Fatalf("no running machine %s among %v", name, files)
	return 0
}
