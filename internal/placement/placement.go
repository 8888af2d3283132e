// Package placement decides which recovery host runs each machine: within
// the hosts' capacity (CPUs, memory, disk for standby images), apart from
// the machines of its anti-affinity group, on a host with the site's
// uplink when it publishes services, and where it was placed before
// (sticky) whenever that still fits, so its standby image is already
// there. It is pure logic: the orchestrator feeds it hosts and machines
// and records the answer in the store.
package placement

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// ErrNoFit: the machines do not fit the hosts.
var ErrNoFit = errors.New("the machines do not fit the recovery hosts")

// Host is a recovery host's capacity; a zero field is not limited.
type Host struct {
	Name      string
	CPUs      int
	MemoryMB  int
	DiskBytes int64
	// Edge: the site's uplink is on this host, so machines that publish
	// services run here (until an overlay carries them across hosts).
	Edge bool
}

// Machine is what one machine needs of its host.
type Machine struct {
	Name      string
	CPUs      int
	MemoryMB  int
	DiskBytes int64
	// AntiAffinity names a group whose machines run on different hosts
	// (two web servers); "" for none.
	AntiAffinity string
	// NeedsEdge: the machine publishes services on the uplink.
	NeedsEdge bool
}

// Placement maps a machine to the name of its host.
type Placement map[string]string

type load struct {
	cpus, mem int
	disk      int64
	groups    map[string]bool
}

func (l *load) fits(h Host, m Machine) bool {
	return (h.CPUs == 0 || l.cpus+m.CPUs <= h.CPUs) &&
		(h.MemoryMB == 0 || l.mem+m.MemoryMB <= h.MemoryMB) &&
		(h.DiskBytes == 0 || l.disk+m.DiskBytes <= h.DiskBytes) &&
		(m.AntiAffinity == "" || !l.groups[m.AntiAffinity]) &&
		(!m.NeedsEdge || h.Edge)
}

func (l *load) add(m Machine) {
	l.cpus += m.CPUs
	l.mem += m.MemoryMB
	l.disk += m.DiskBytes
	if m.AntiAffinity != "" {
		l.groups[m.AntiAffinity] = true
	}
}

// free is how much of h is left, as a fraction summed over its limited
// resources: the emptiest host gets the next machine, which spreads the
// machines (and a lost host's share) over every host.
func (l *load) free(h Host) float64 {
	f := 0.0
	if h.CPUs > 0 {
		f += 1 - float64(l.cpus)/float64(h.CPUs)
	}
	if h.MemoryMB > 0 {
		f += 1 - float64(l.mem)/float64(h.MemoryMB)
	}
	if h.DiskBytes > 0 {
		f += 1 - float64(l.disk)/float64(h.DiskBytes)
	}
	return f - float64(len(l.groups))*1e-9 // ties: fewer anti-affinity groups first
}

// Place puts every machine on one of hosts. A machine keeps its host in
// prev when that host is among hosts and it still fits there; the others
// go, biggest first, to the emptiest host they fit on. The error names
// every machine that fits nowhere and why.
func Place(hosts []Host, machines []Machine, prev Placement) (Placement, error) {
	loads := make(map[string]*load, len(hosts))
	for _, h := range hosts {
		loads[h.Name] = &load{groups: map[string]bool{}}
	}
	out := Placement{}
	var rest []Machine
	for _, m := range machines {
		i := slices.IndexFunc(hosts, func(h Host) bool { return h.Name == prev[m.Name] })
		if i >= 0 && loads[hosts[i].Name].fits(hosts[i], m) {
			loads[hosts[i].Name].add(m)
			out[m.Name] = hosts[i].Name
			continue
		}
		rest = append(rest, m)
	}
	sort.SliceStable(rest, func(i, j int) bool { return bigger(rest[i], rest[j]) })
	var unplaced []string
	for _, m := range rest {
		best := -1
		for i, h := range hosts {
			if loads[h.Name].fits(h, m) && (best < 0 || loads[h.Name].free(h) > loads[hosts[best].Name].free(hosts[best])) {
				best = i
			}
		}
		if best < 0 {
			unplaced = append(unplaced, m.Name+" ("+needs(m)+")")
			continue
		}
		loads[hosts[best].Name].add(m)
		out[m.Name] = hosts[best].Name
	}
	if len(unplaced) > 0 {
		return out, fmt.Errorf("%w: no room for %s on %s", ErrNoFit, strings.Join(unplaced, ", "), describe(hosts, loads))
	}
	return out, nil
}

func bigger(a, b Machine) bool {
	if a.NeedsEdge != b.NeedsEdge {
		return a.NeedsEdge // the edge hosts are few: theirs go first
	}
	if a.MemoryMB != b.MemoryMB {
		return a.MemoryMB > b.MemoryMB
	}
	if a.CPUs != b.CPUs {
		return a.CPUs > b.CPUs
	}
	return a.DiskBytes > b.DiskBytes
}

func needs(m Machine) string {
	s := fmt.Sprintf("%d CPUs, %d MB, %s disk", m.CPUs, m.MemoryMB, gib(m.DiskBytes))
	if m.AntiAffinity != "" {
		s += ", anti-affinity " + m.AntiAffinity
	}
	if m.NeedsEdge {
		s += ", publishes: needs an edge host"
	}
	return s
}

// describe says what each host has left after the machines that fit.
func describe(hosts []Host, loads map[string]*load) string {
	if len(hosts) == 0 {
		return "no host"
	}
	var parts []string
	for _, h := range hosts {
		l := loads[h.Name]
		s := fmt.Sprintf("%s (%s CPUs, %s MB, %s disk free", h.Name,
			left(h.CPUs, l.cpus), left(h.MemoryMB, l.mem), leftBytes(h.DiskBytes, l.disk))
		if h.Edge {
			s += ", edge"
		}
		parts = append(parts, s+")")
	}
	return strings.Join(parts, ", ")
}

func left(limit, used int) string {
	if limit == 0 {
		return "unlimited"
	}
	return fmt.Sprint(limit - used)
}

func leftBytes(limit, used int64) string {
	if limit == 0 {
		return "unlimited"
	}
	return gib(limit - used)
}

func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// Down is the hosts without the named one.
func Down(hosts []Host, name string) []Host {
	return slices.DeleteFunc(slices.Clone(hosts), func(h Host) bool { return h.Name == name })
}

// NPlus1 checks that the machines still fit when any one host is lost
// (its machines moved to the others, everyone else staying where p has
// them): one warning per host whose loss leaves machines nowhere to go.
// With a single host there is no N+1 at all, which is one warning too.
func NPlus1(hosts []Host, machines []Machine, p Placement) []string {
	if len(hosts) < 2 {
		if len(machines) == 0 {
			return nil
		}
		return []string{"N+1: a single recovery host: losing it loses every recovered machine"}
	}
	var warns []string
	for _, h := range hosts {
		if _, err := Place(Down(hosts, h.Name), machines, p); err != nil {
			warns = append(warns, fmt.Sprintf("N+1: without host %s: %v", h.Name, strings.TrimPrefix(err.Error(), ErrNoFit.Error()+": ")))
		}
	}
	return warns
}
