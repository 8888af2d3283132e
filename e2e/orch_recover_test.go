package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// TestRecoverControlPlaneFromVault loses the control plane whole (process,
// state.db, host directory) after a config and a drill, rebuilds it on a
// fresh state directory from the vault alone, and fails over with it.
func TestRecoverControlPlaneFromVault(t *testing.T) {
	s := newDRSite(t)
	ctx := context.Background()
	s.apply()
	s.waitPoints(1)
	trep, r := s.runJob("failover", "test", "--plan", "shop")
	if r.code != 0 || trep.State != string(store.Succeeded) {
		t.Fatalf("test failover: exit %d %s: %s", r.code, trep.State, trep.Error)
	}
	crep, r := s.runJob("failover", "cleanup", "--plan", "shop", "--note", "before the fire")
	if r.code != 0 || crep.State != string(store.Succeeded) {
		t.Fatalf("cleanup: exit %d %s: %s", r.code, crep.State, crep.Error)
	}
	// The catalog is saved off the job's path: wait until the vault
	// holds the drill, as the next control plane will read it.
	s.eventually(time.Minute, "catalog with the drill in the vault", func() error {
		c, err := s.readCatalog(ctx)
		if err != nil {
			return err
		}
		if len(c.Drills) != 1 || c.Drills[0].JobID != trep.Job || c.Config == nil {
			return fmt.Errorf("catalog has drills %+v", c.Drills)
		}
		return nil
	})

	// The control plane burns: process and all of its state.
	s.kill("server", syscall.SIGKILL)
	s.removeRecoverySite()
	if err := os.RemoveAll(s.serverState); err != nil {
		t.Fatal(err)
	}
	s.serverState = filepath.Join(s.xfs, "server-new")
	s.startRecoveredServer()

	st := mustHaven(t, s.serverEnv(), "status")
	for _, want := range []string{"db", "web", "plan shop: protected"} {
		if !strings.Contains(st, want) {
			t.Errorf("haven status after recovery lacks %q:\n%s", want, st)
		}
	}
	var cfg protection.Config
	if res, err := s.client.Config(ctx); err != nil || json.Unmarshal(res.Config, &cfg) != nil || len(cfg.Plans) != 1 || cfg.Plans[0].Name != "shop" {
		t.Fatalf("config after recovery: %+v, %v", cfg, err)
	}
	ds, err := s.client.Drills(ctx, "shop")
	if err != nil || len(ds) != 1 || ds[0].JobID != trep.Job || !ds[0].Passed || ds[0].Note != "before the fire" {
		t.Fatalf("drill history after recovery: %+v, %v", ds, err)
	}
	j, err := s.client.Job(ctx, crep.Job)
	if err != nil || j.State != api.JobSucceeded || j.Type != "test-cleanup" || j.Ended == nil {
		t.Fatalf("cleanup job after recovery: %+v, %v", j, err)
	}
	if active, err := s.client.Jobs(ctx, "", true, 0); err != nil || len(active) != 0 {
		t.Fatalf("active jobs after recovery (none may be re-run): %+v, %v", active, err)
	}
	// A second recovery onto this state is refused and changes nothing.
	r = haven(t, s.env, "server", "--config", filepath.Join(s.dir, "server.yaml"), "--recover-from-vault")
	if r.code != 2 || !strings.Contains(r.stderr, "state.db exists") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("recovery over existing state: exit %d: %s", r.code, r.stderr)
	}

	// Then the primary site burns too, and the recovered control plane
	// fails over.
	s.waitNewPoint(t)
	s.disaster(t)
	rep, r := s.runJob("failover", "unplanned", "--plan", "shop")
	if r.code != 0 || rep.State != string(store.Succeeded) {
		t.Fatalf("unplanned failover after recovery: exit %d %s: %s\n%s", r.code, rep.State, rep.Error, s.log("server"))
	}
	if err := s.expectDNS("10.2.0.20"); err != nil {
		t.Fatal(err)
	}
	if out, err := s.http(s.inet, "GET", "http://10.2.0.20/", ""); err != nil || !strings.Contains(out, "hello from web") {
		t.Fatalf("recovered web through the customers' network: %q %v", out, err)
	}
}

// readCatalog reads the server's catalog as a new machine would: from
// the vault URL and the password.
func (s *drSite) readCatalog(ctx context.Context) (*server.Catalog, error) {
	be, err := blobopen.Open(ctx, s.vaultURL, blob.DefaultLimits())
	if err != nil {
		return nil, err
	}
	defer be.Close()
	v, err := vault.Open(ctx, be, "correct horse", vault.Options{})
	if err != nil {
		return nil, err
	}
	defer v.Close()
	_, b, _, err := v.LatestCatalog(ctx, "server")
	if err != nil {
		return nil, err
	}
	var c server.Catalog
	return &c, json.Unmarshal(b, &c)
}

// startRecoveredServer is startServer on a new state directory with
// --recover-from-vault.
func (s *drSite) startRecoveredServer() { s.startServer("--recover-from-vault") }
