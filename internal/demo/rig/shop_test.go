package rig

import (
	"testing"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/protection"
)

// TestConfigsParse: the configs the rig writes for the demo, the e2e
// tests and the benchmark are accepted by the parsers of the parts that
// read them, and carry what each asked for.
func TestConfigsParse(t *testing.T) {
	shops := map[string]Shop{
		"demo":  {AgentURL: "http://127.0.0.1:7000", AgentToken: "/t", DBPort: 5432, DBData: true, Timeout: "2m", DNSToken: "/d", Edge: "hvx-inet", Resolve: "10.9.0.1:53"},
		"e2e":   {AgentURL: "http://127.0.0.1:7000", AgentToken: "/t", DBPort: 80, Timeout: "1m", WebBefore: `{type: manual, message: "check", types: [test]}`, WebAfter: `- {type: manual, message: "after"}`, DNSToken: "/d", Edge: "hvx-inet", Resolve: "127.0.0.1:53"},
		"bench": {DBPort: 80, DBData: true, WebData: true, Timeout: "2m", DNSToken: "/d", Edge: "hvx-inet", Resolve: "127.0.0.1:53"},
	}
	for name, shop := range shops {
		c, err := protection.Parse([]byte(shop.YAML()))
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, shop.YAML())
		}
		web := c.Plans[0].Groups[1]
		if len(c.Machines) != 2 || len(c.Machines[0].Disks) != map[bool]int{false: 1, true: 2}[shop.DBData] ||
			len(web.Before) != map[bool]int{false: 0, true: 1}[shop.WebBefore != ""] ||
			len(web.After) != map[bool]int{false: 2, true: 3}[shop.WebAfter != ""] || (len(c.Agents) == 1) != (shop.AgentURL != "") {
			t.Errorf("%s: parsed %+v", name, c)
		}
	}
	if _, err := dns.ParseConfig([]byte(dnsConfig("127.0.0.1:53"))); err != nil {
		t.Fatal(err)
	}
	r := New(Options{Dir: "/w", Bin: "/w/haven"})
	r.Vault, r.XFS, r.MachineFiles["db"] = "file:///w/vault", "/x", "/w/db.machine.json"
	text := r.agentConfig(Agent{Port: 7000, ServerPort: 7001, Token: "/t", Machines: []AgentMachine{{Name: "db", Group: "shop",
		Disks: "[{name: root, path: /x/db.img}]", Hooks: `{pre: "true", timeout: 20s}`, Policy: "{frequency: 15s, rpo_alert: 1m}"}}})
	a, err := agent.ParseConfig(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if len(a.Machines) != 1 || a.Machines[0].Control.MachineFile != "/w/db.machine.json" {
		t.Fatalf("agent config:\n%s", text)
	}
}
