package orchestrator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/vault"
)

// writer keeps writing into files until stopped, like machines taking
// writes while their agent snapshots them.
func writer(t *testing.T, paths ...string) (stop func()) {
	t.Helper()
	var files []*os.File
	for _, p := range paths {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 4096)
		for {
			select {
			case <-done:
				return
			default:
			}
			for _, f := range files {
				rand.Read(buf)
				f.WriteAt(buf, mrand.Int64N(256)*4096)
			}
			time.Sleep(time.Millisecond)
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			for _, f := range files {
				f.Close()
			}
		})
	}
}

// groupAgent is a real agent (file vault, image-file disks, provider none)
// protecting db and web in one consistency group "shop".
func groupAgent(t *testing.T) (*agent.Agent, *vault.Vault, map[string]string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	be, err := fileblob.New(filepath.Join(dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Init(ctx, be, "pw", vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	disks := map[string]string{}
	var ms strings.Builder
	for _, m := range []string{"db", "web"} {
		disks[m] = filepath.Join(dir, m+".img")
		data := make([]byte, 1<<20)
		rand.Read(data)
		if err := os.WriteFile(disks[m], data, 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&ms, "  - {name: %s, group: shop, provider: none, disks: [{name: root, path: %s}]}\n", m, disks[m])
	}
	cfg, err := agent.ParseConfig(fmt.Sprintf("vault: /unused\nstate_dir: %s\nmachines:\n%s", filepath.Join(dir, "state"), ms.String()))
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.NewWithVault(cfg, v)
	if err != nil {
		t.Fatal(err)
	}
	return a, v, disks
}

// TestGroupDefaultPointIsOneInstant: the agent's group snapshot gives db
// and web points of one capture instant while both take writes; when a
// later cycle stored db's point but not web's, the default choice keeps
// the group at the newest instant both have (and says which newer point
// it passed over), while latest-per-machine takes each one's newest.
func TestGroupDefaultPointIsOneInstant(t *testing.T) {
	ctx := context.Background()
	a, v, disks := groupAgent(t)
	stop := writer(t, disks["db"], disks["web"])
	defer stop()
	for range 2 {
		if err := a.Cycle(ctx, "shop"); err != nil {
			t.Fatal(err)
		}
	}
	// A cycle whose web part fails: web's disk cannot be read.
	if err := os.Rename(disks["web"], disks["web"]+".away"); err != nil {
		t.Fatal(err)
	}
	if err := a.Cycle(ctx, "shop"); err == nil {
		t.Fatal("a cycle with web's disk gone succeeded")
	}
	if err := os.Rename(disks["web"]+".away", disks["web"]); err != nil {
		t.Fatal(err)
	}
	stop()

	db, _ := v.Points(ctx, "db")
	web, _ := v.Points(ctx, "web")
	if len(db) != 3 || len(web) != 2 {
		t.Fatalf("%d db points, %d web points; want 3 and 2", len(db), len(web))
	}
	var webTimes []time.Time
	for _, p := range web {
		webTimes = append(webTimes, p.Time)
	}
	shared := 0
	for _, p := range db {
		if slices.ContainsFunc(webTimes, p.Time.Equal) {
			shared++
		}
	}
	if shared != 2 {
		t.Fatalf("db and web share %d capture instants, want 2 (one per complete group cycle)", shared)
	}
	newestDB := slices.MaxFunc(db, func(x, y *vault.Point) int { return x.Time.Compare(y.Time) })
	newestWeb := slices.MaxFunc(web, func(x, y *vault.Point) int { return x.Time.Compare(y.Time) })

	groups := map[string]string{"db": "shop", "web": "shop"}
	all := []string{"db", "web"}
	for _, choice := range []string{"", PointLatest} {
		pts, notes, err := choosePoints(ctx, v, all, groups, choice)
		if err != nil {
			t.Fatal(err)
		}
		if !pts["db"].Time.Equal(pts["web"].Time) || pts["web"].ID != newestWeb.ID {
			t.Fatalf("choice %q: db %s at %s, web %s at %s; want both from web's newest instant %s",
				choice, pts["db"].ID, pts["db"].Time, pts["web"].ID, pts["web"].Time, newestWeb.Time)
		}
		if len(notes) != 2 || !strings.Contains(notes[0], "consistency group shop") || !strings.Contains(notes[1], newestDB.ID) {
			t.Fatalf("choice %q: notes %q; want the group's instant and db's passed-over point %s", choice, notes, newestDB.ID)
		}
	}
	pts, _, err := choosePoints(ctx, v, all, groups, PointLatestPerMachine)
	if err != nil {
		t.Fatal(err)
	}
	if pts["db"].ID != newestDB.ID || pts["web"].ID != newestWeb.ID {
		t.Fatalf("latest-per-machine: %+v; want db %s, web %s", pts, newestDB.ID, newestWeb.ID)
	}
}

// A group with no instant every member has is refused, naming the way out.
func TestGroupWithoutCommonInstantRefused(t *testing.T) {
	ctx := context.Background()
	a, v, disks := groupAgent(t)
	if err := os.Rename(disks["web"], disks["web"]+".away"); err != nil {
		t.Fatal(err)
	}
	if err := a.Cycle(ctx, "shop"); err == nil {
		t.Fatal("a cycle with web's disk gone succeeded")
	}
	os.Rename(disks["web"]+".away", disks["web"])
	// web has no point at all, so no instant is shared.
	_, _, err := choosePoints(ctx, v, []string{"db", "web"}, map[string]string{"db": "shop", "web": "shop"}, "")
	if !errors.Is(err, ErrPrecondition) || !strings.Contains(err.Error(), "latest-per-machine") {
		t.Fatalf("err = %v, want ErrPrecondition naming latest-per-machine", err)
	}
}
