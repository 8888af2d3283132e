package placement

import (
	"errors"
	"strings"
	"testing"
)

var three = []Host{
	{Name: "a", CPUs: 8, MemoryMB: 16384, DiskBytes: 200 << 30, Edge: true},
	{Name: "b", CPUs: 8, MemoryMB: 16384, DiskBytes: 200 << 30},
	{Name: "c", CPUs: 8, MemoryMB: 16384, DiskBytes: 200 << 30},
}

func vm(name string, cpus, memMB int) Machine {
	return Machine{Name: name, CPUs: cpus, MemoryMB: memMB, DiskBytes: 20 << 30}
}

func TestPlaceRespectsCapacity(t *testing.T) {
	ms := []Machine{vm("db", 6, 12000), vm("app", 6, 12000), vm("cache", 6, 12000)}
	p, err := Place(three, ms, nil)
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[string]bool{}
	for _, m := range ms {
		hosts[p[m.Name]] = true
	}
	if len(hosts) != 3 {
		t.Fatalf("three machines of 6 CPUs on hosts of 8 must take three hosts: %v", p)
	}
	_, err = Place(three, append(ms, vm("extra", 4, 1000)), nil)
	if !errors.Is(err, ErrNoFit) || !strings.Contains(err.Error(), "extra (4 CPUs") {
		t.Fatalf("a fourth machine of 4 CPUs fits nowhere: want ErrNoFit naming it, got %v", err)
	}
	if !strings.Contains(err.Error(), "a (2 CPUs") {
		t.Fatalf("the refusal says what each host has left: %v", err)
	}
}

func TestPlaceDiskAndUnlimited(t *testing.T) {
	small := []Host{{Name: "x", DiskBytes: 30 << 30}, {Name: "y"}}
	p, err := Place(small, []Machine{vm("m1", 1, 1), vm("m2", 1, 1)}, Placement{"m1": "x", "m2": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if p["m1"] != "x" || p["m2"] != "y" {
		t.Fatalf("x holds one 20 GiB standby image of 30 GiB; the second goes to the unlimited host: %v", p)
	}
}

func TestPlaceAntiAffinity(t *testing.T) {
	web1, web2 := vm("web1", 1, 512), vm("web2", 1, 512)
	web1.AntiAffinity, web2.AntiAffinity = "web", "web"
	// Both were on a before: the second may not stay there.
	p, err := Place(three, []Machine{web1, web2}, Placement{"web1": "a", "web2": "a"})
	if err != nil {
		t.Fatal(err)
	}
	if p["web1"] != "a" || p["web2"] == "a" {
		t.Fatalf("web1 stays on a, web2 must leave it: %v", p)
	}
	_, err = Place(three[:1], []Machine{web1, web2}, nil)
	if !errors.Is(err, ErrNoFit) || !strings.Contains(err.Error(), "anti-affinity web") {
		t.Fatalf("two machines of one anti-affinity group on one host: %v", err)
	}
}

func TestPlaceSticky(t *testing.T) {
	ms := []Machine{vm("db", 2, 2048), vm("web", 1, 1024)}
	prev := Placement{"db": "c", "web": "c"}
	p, err := Place(three, ms, prev)
	if err != nil {
		t.Fatal(err)
	}
	if p["db"] != "c" || p["web"] != "c" {
		t.Fatalf("machines that still fit stay where their standby images are: %v", p)
	}
	// c gone: they move, and nothing else does.
	p, err = Place(Down(three, "c"), ms, prev)
	if err != nil {
		t.Fatal(err)
	}
	if p["db"] == "c" || p["web"] == "c" || p["db"] == "" || p["web"] == "" {
		t.Fatalf("without c: %v", p)
	}
}

func TestPlaceEdge(t *testing.T) {
	web := vm("web", 1, 512)
	web.NeedsEdge = true
	p, err := Place(three, []Machine{vm("db", 1, 512), web}, Placement{"web": "b"})
	if err != nil {
		t.Fatal(err)
	}
	if p["web"] != "a" {
		t.Fatalf("a machine that publishes runs on the edge host a: %v", p)
	}
	if _, err := Place(Down(three, "a"), []Machine{web}, nil); !errors.Is(err, ErrNoFit) || !strings.Contains(err.Error(), "needs an edge host") {
		t.Fatalf("without an edge host: %v", err)
	}
}

func TestNPlus1(t *testing.T) {
	// 3 hosts of 8 CPUs; 16 CPUs of machines fit on two hosts.
	ms := []Machine{vm("m1", 4, 1), vm("m2", 4, 1), vm("m3", 4, 1), vm("m4", 4, 1)}
	p, err := Place(three, ms, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := NPlus1(three, ms, p); len(w) != 0 {
		t.Fatalf("16 CPUs fit on any two hosts of 8: %v", w)
	}
	// 20 CPUs: they fit on three, not on two.
	ms = append(ms, vm("m5", 4, 1))
	if p, err = Place(three, ms, nil); err != nil {
		t.Fatal(err)
	}
	w := NPlus1(three, ms, p)
	if len(w) != 3 {
		t.Fatalf("losing any host leaves a 4-CPU machine nowhere: want a warning per host, got %v", w)
	}
	for _, h := range []string{"a", "b", "c"} {
		if !strings.Contains(strings.Join(w, "\n"), "without host "+h+": no room for m") {
			t.Fatalf("no warning naming host %s and the machine: %v", h, w)
		}
	}
	if w := NPlus1(three[:1], ms[:1], nil); len(w) != 1 || !strings.Contains(w[0], "single recovery host") {
		t.Fatalf("one host: %v", w)
	}
}
