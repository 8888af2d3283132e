package orchtest

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/vnet"
)

const cfgDoc = `
sites: {primary: dc1, recovery: dc2}
networks:
  primary: [{name: prod, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  recovery: [{name: rec, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  test: [{name: drill, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
mapping: {recovery: {prod: rec}, test: {prod: drill}}
agents: [{name: a1, url: http://127.0.0.1:1}]
machines:
  - {name: db, agent: a1, group: g, disks: [{name: root, path: /x}], nics: [{name: eth0, network: prod, address: 10.1.0.10/24}], health: {tcp_port: 1}}
  - {name: web, agent: a1, group: g, disks: [{name: root, path: /y}], nics: [{name: eth0, network: prod, address: 10.1.0.20/24}], health: {tcp_port: 1}}
plans: [{name: p, groups: [{machines: [db, web]}]}]
`

// A point a fake agent takes is real: the fake host restores it into a
// file equal to the primary's disk, and a restore with preserve puts the
// primary back and keeps what it held.
func TestFakesRoundTrip(t *testing.T) {
	ctx := context.Background()
	env := NewEnv(t)
	cfg, err := protection.Parse([]byte(cfgDoc))
	if err != nil {
		t.Fatal(err)
	}
	ag, err := NewAgents(env.Vault, cfg, filepath.Join(env.Dir, "primary"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := ag.Dial(protection.Agent{Name: "a1"})
	ids, err := c.Snapshot(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	id := ids["db"]
	ps, _ := env.Vault.Points(ctx, "web")
	if len(ps) != 1 || ps[0].Group != "g" || ids["web"] != ps[0].ID {
		t.Fatalf("the group's other member has points %v; the snapshot answered %v", ps, ids)
	}
	h := NewHost(env.Vault)
	target := filepath.Join(env.Dir, "rec", "db.img")
	if _, err := h.PrepareDisk(ctx, host.DiskRequest{Machine: "db", Disk: "root", Point: id, Target: target}); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(ag.DiskPath("db", "root"))
	if got, _ := os.ReadFile(target); !bytes.Equal(got, want) {
		t.Fatal("prepared disk differs from the primary's")
	}
	spec := machine.Spec{Name: "db", Disks: []machine.Disk{{Name: "root", Path: target}}}
	if err := h.StartMachine(ctx, "rec", "ns", spec); err == nil {
		t.Fatal("started without a site")
	}
	h.EnsureSite(ctx, "rec", cfg.Networks.Recovery, "")
	h.FailNext("StartMachine", nil)
	if err := h.StartMachine(ctx, "rec", "ns", spec); !errors.Is(err, ErrInjected) {
		t.Fatalf("injected failure: %v", err)
	}
	h.StartMachine(ctx, "rec", "ns", spec)
	h.StartMachine(ctx, "rec", "ns", spec)
	if h.Boots("rec", "db") != 1 || !h.Running("rec", "db") {
		t.Fatalf("boots %d", h.Boots("rec", "db"))
	}
	if err := h.EnsureSite(ctx, "rec", []vnet.Network{cfg.Networks.Recovery[0], cfg.Networks.Test[0]}, ""); err != nil ||
		!h.Running("rec", "db") || h.SiteCreations("rec") != 1 {
		t.Fatalf("a network added to a live site: %v", err)
	}
	moved := cfg.Networks.Recovery[0]
	moved.Subnet = netip.MustParsePrefix("10.9.0.0/24")
	if err := h.EnsureSite(ctx, "rec", []vnet.Network{moved}, ""); !errors.Is(err, host.ErrSiteBusy) || !h.Running("rec", "db") {
		t.Fatalf("a changed network under a running machine: %v", err)
	}
	h.StopMachine(ctx, "rec", "db")
	if err := h.EnsureSite(ctx, "rec", []vnet.Network{moved}, ""); err != nil || h.SiteCreations("rec") != 2 {
		t.Fatalf("a changed network on an idle site: %v", err)
	}

	c.Stop(ctx, "db")
	ag.Write("db", "root", 0, []byte("later write"))
	res, err := c.Restore(ctx, "db", agent.RestoreRequest{Point: id, Preserve: true})
	if err != nil || res.Preserved == "" {
		t.Fatalf("restore %+v %v", res, err)
	}
	if got, _ := os.ReadFile(ag.DiskPath("db", "root")); !bytes.Equal(got, want) {
		t.Fatal("restore did not put the point back")
	}
	ag.SetMode("a1", Dead)
	if _, err := c.Status(ctx); err == nil {
		t.Fatal("dead agent answers")
	}

	tr := NewTraffic()
	tr.AddProfile("shop", dns.EndpointStatus{Name: "dc1", Target: "1.1.1.1", Enabled: true, Priority: 1},
		dns.EndpointStatus{Name: "dc2", Target: "2.2.2.2", Enabled: true, Priority: 2})
	if a, _ := tr.Answers(ctx, "shop"); len(a) != 1 || a[0] != "1.1.1.1" {
		t.Fatalf("answers %v", a)
	}
	off := false
	tr.UpdateEndpoint(ctx, "shop", "dc1", dns.EndpointPatch{Enabled: &off})
	if a, _ := tr.Answers(ctx, "shop"); len(a) != 1 || a[0] != "2.2.2.2" {
		t.Fatalf("answers after the switch %v", a)
	}
}
