package placement

import (
	"strings"
	"testing"
)

// TestDocsThreeHosts holds docs/orchestrator.md's three-host example to
// what placement does: the shop plan survives any one host; a second
// database of 12 CPUs fits on three hosts but not on every two.
func TestDocsThreeHosts(t *testing.T) {
	hosts := []Host{{Name: "a", CPUs: 16, MemoryMB: 65536, DiskBytes: 2000 << 30, Edge: true},
		{Name: "b", CPUs: 16, MemoryMB: 65536, DiskBytes: 2000 << 30},
		{Name: "c", CPUs: 16, MemoryMB: 65536, DiskBytes: 2000 << 30}}
	ms := []Machine{{Name: "db", CPUs: 8, MemoryMB: 32768},
		{Name: "web1", CPUs: 4, MemoryMB: 8192, AntiAffinity: "web"},
		{Name: "web2", CPUs: 4, MemoryMB: 8192, AntiAffinity: "web"}}
	p, err := Place(hosts, ms, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p["db"] != "a" || p["web1"] == p["web2"] || p["web1"] == "a" || p["web2"] == "a" {
		t.Fatalf("docs say db on a, web1 and web2 on b and c: %v", p)
	}
	if w := NPlus1(hosts, ms, p); len(w) != 0 {
		t.Fatalf("docs say no N+1 warning: %v", w)
	}
	ms = append(ms, Machine{Name: "batch1", CPUs: 9, MemoryMB: 8192}, Machine{Name: "batch2", CPUs: 9, MemoryMB: 8192})
	if p, err = Place(hosts, ms, p); err != nil {
		t.Fatal(err)
	}
	w := NPlus1(hosts, ms, p)
	if len(w) != 3 || !strings.Contains(w[0], "without host a: no room for") {
		t.Fatalf("docs say two 9-CPU machines (34 CPUs, more than two hosts hold) draw a warning per host: %v", w)
	}
}
