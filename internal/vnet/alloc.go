package vnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/haven-dr/haven/internal/atomicfile"
)

// Mode says how a NIC gets its address on the recovery network.
type Mode string

const (
	// Keep reuses the NIC's primary-site address; the recovery subnet must
	// contain it.
	Keep Mode = "keep"
	// Static uses the address given in the request.
	Static Mode = "static"
	// Allocate takes the address recorded for this NIC, or the next free one.
	Allocate Mode = "allocate"
)

// Request asks for an address for one NIC.
type Request struct {
	Mode Mode       `json:"mode" yaml:"mode"`
	Addr netip.Addr `json:"addr,omitzero" yaml:"addr,omitempty"` // primary (Keep) or wanted (Static)
}

// Allocator hands out addresses and records them in a JSON file, so the same
// machine gets the same address on every failover, and refuses conflicts.
type Allocator struct {
	mu   sync.Mutex
	path string
	// rec: network name -> "machine/nic" -> address.
	rec map[string]map[string]netip.Addr
}

// OpenAllocator loads the allocation record at path (missing: empty).
func OpenAllocator(path string) (*Allocator, error) {
	a := &Allocator{path: path, rec: map[string]map[string]netip.Addr{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vnet: read allocations: %w", err)
	}
	if err := json.Unmarshal(b, &a.rec); err != nil {
		return nil, fmt.Errorf("vnet: parse allocations %s: %w", path, err)
	}
	return a, nil
}

// Assign returns the address (with the subnet's prefix length) for
// machine/nic on network n and records it.
func (a *Allocator) Assign(n Network, machine, nic string, req Request) (netip.Prefix, error) {
	if err := n.Validate(); err != nil {
		return netip.Prefix{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	key := machine + "/" + nic
	addr, err := a.pick(n, key, req)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.rec[n.Name] == nil {
		a.rec[n.Name] = map[string]netip.Addr{}
	}
	a.rec[n.Name][key] = addr
	if err := a.save(); err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(addr, n.Subnet.Bits()), nil
}

func (a *Allocator) pick(n Network, key string, req Request) (netip.Addr, error) {
	switch req.Mode {
	case Keep, Static:
		return req.Addr, a.check(n, key, req.Addr)
	case Allocate, "":
		if prev, ok := a.rec[n.Name][key]; ok && a.check(n, key, prev) == nil {
			return prev, nil
		}
		return a.next(n, key)
	}
	return netip.Addr{}, fmt.Errorf("vnet: unknown address mode %q", req.Mode)
}

// check refuses addresses outside the subnet, reserved ones, and ones held
// by another NIC.
func (a *Allocator) check(n Network, key string, addr netip.Addr) error {
	if !addr.IsValid() || !n.Subnet.Contains(addr) {
		return fmt.Errorf("%w: %v not in %v (network %s)", ErrOutsideSubnet, addr, n.Subnet, n.Name)
	}
	if reserved(n, addr) {
		return fmt.Errorf("%w: %v is reserved on network %s", ErrConflict, addr, n.Name)
	}
	for k, held := range a.rec[n.Name] {
		if held == addr && k != key {
			return fmt.Errorf("%w: %v on network %s is already held by %s", ErrConflict, addr, n.Name, k)
		}
	}
	return nil
}

func (a *Allocator) next(n Network, key string) (netip.Addr, error) {
	for addr := n.Subnet.Addr().Next(); n.Subnet.Contains(addr); addr = addr.Next() {
		if a.check(n, key, addr) == nil {
			return addr, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: %s %v", ErrExhausted, n.Name, n.Subnet)
}

// reserved: network address, broadcast (IPv4), gateway and DNS servers.
func reserved(n Network, addr netip.Addr) bool {
	if addr == n.Subnet.Addr() || addr == n.Gateway {
		return true
	}
	for _, d := range n.DNS {
		if d == addr {
			return true
		}
	}
	return addr.Is4() && !n.Subnet.Contains(addr.Next())
}

// Release forgets machine/nic's address on network.
func (a *Allocator) Release(network, machine, nic string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.rec[network], machine+"/"+nic)
	return a.save()
}

func (a *Allocator) save() error {
	if a.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(a.rec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(a.path), 0o755); err != nil {
		return fmt.Errorf("vnet: allocations dir: %w", err)
	}
	if err := atomicfile.WriteFile(a.path, b, 0o644); err != nil {
		return fmt.Errorf("vnet: write allocations: %w", err)
	}
	return nil
}
