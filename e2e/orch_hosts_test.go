package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/server/client"
	"github.com/haven-dr/haven/internal/vault"
)

// hostsShop is two ns machines of the guest image (which serves HTTP on
// port 80), 2 CPUs each, no agent (the primary is simply gone) and no
// uplink.
const hostsShop = hostsNets + `machines:
  - {name: db, cpus: 2, disks: [{name: root}], health: {tcp_port: 80}, health_timeout: 1m,
     nics: [{name: eth0, network: prod, address: 10.1.0.10/24, recovery: static, static: 10.2.0.10}]}
  - {name: web, cpus: 2, disks: [{name: root}], health: {http_port: 80, http_path: /}, health_timeout: 1m,
     nics: [{name: eth0, network: prod, address: 10.1.0.20/24, recovery: static, static: 10.2.0.20}]}
plans:
  - name: shop
    groups:
      - {name: database, machines: [db]}
      - {name: web, machines: [web]}
`

// hostsNets are the sites and networks of the hosts tests' plans.
const hostsNets = `sites: {primary: onprem, recovery: cloud}
networks:
  primary: [{name: prod, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  recovery: [{name: rec, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
  test: [{name: drill, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
mapping: {recovery: {prod: rec}, test: {prod: drill}}
`

// seedHostsVault makes the vault with one point of each machine's root
// disk (the guest image).
func seedHostsVault(t *testing.T, url string) {
	ctx := context.Background()
	be, err := blobopen.Open(ctx, url, blob.DefaultLimits())
	hostsMust(t, err)
	v, err := vault.Init(ctx, be, "correct horse", vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}})
	hostsMust(t, err)
	defer v.Close()
	for _, m := range []string{"db", "web"} {
		_, _, err := v.Snapshot(ctx, vault.SnapshotOptions{Machine: m, Disks: []vault.DiskSource{{Name: "root", Path: machinetest.Image(t)}},
			Consistency: vault.CrashConsistent, Provider: "none"})
		hostsMust(t, err)
	}
}

func startHostsServer(t *testing.T, cfg *server.Config, dial server.HostDialer) *client.Client {
	s, err := server.New(context.Background(), cfg, server.Options{Hosts: dial, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hostsMust(t, err)
	ln, err := net.Listen("tcp", cfg.Listen)
	hostsMust(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		s.Close()
	})
	tok, err := httpauth.ReadTokenFile(cfg.TokenFile)
	hostsMust(t, err)
	scheme := "http://"
	if cfg.TLS.Mode != "off" {
		scheme = "https://"
	}
	return client.New(scheme+ln.Addr().String(), tok, 30*time.Second)
}

func waitHostsJob(t *testing.T, c *client.Client, id string) *api.Job {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		j, err := c.Job(context.Background(), id)
		hostsMust(t, err)
		if j.State == "succeeded" || j.State == "failed" || j.State == "canceled" {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after 3m", id, j.State)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func outputsOfAPI(t *testing.T, j *api.Job) *orchestrator.Outputs {
	t.Helper()
	var out orchestrator.Outputs
	if err := json.Unmarshal(j.Outputs, &out); err != nil {
		t.Fatal(fmt.Errorf("job %s outputs: %w", j.ID, err))
	}
	return &out
}

func hostsMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
