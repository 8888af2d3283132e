package machine

import (
	"errors"
	"fmt"
)

// ErrOverMemory says a machine went over its memory limit and the kernel
// killed processes in it (the machine may still run, short of them).
var ErrOverMemory = errors.New("machine: over its memory limit")

// Sources of a MemoryStatus.
const (
	// MemoryCgroup: the limit, usage and counts are the kernel's for the
	// machine's cgroup (the ns driver).
	MemoryCgroup = "cgroup"
	// MemoryVM: LimitMB is the VM's configured size; what happens inside
	// the guest (its own OOM killer) is not seen from the host, so the
	// counts stay 0.
	MemoryVM = "vm"
)

// MemoryStatus is what a machine's memory limit did.
type MemoryStatus struct {
	Source  string `json:"source,omitempty"` // MemoryCgroup or MemoryVM; "" without a limit
	LimitMB int    `json:"limit_mb"`
	// UsageMB is the cgroup's memory use now (page cache included).
	UsageMB int `json:"usage_mb,omitempty"`
	// AtLimit counts the times the machine's memory reached its limit and
	// the kernel had to reclaim (cgroup v2 memory.events "max", v1
	// memory.failcnt).
	AtLimit uint64 `json:"at_limit"`
	// OOMKills counts processes of the machine the kernel killed for
	// want of memory.
	OOMKills uint64 `json:"oom_kills"`
}

// Err is ErrOverMemory, with the counts, once a process was killed.
func (s MemoryStatus) Err() error {
	if s.OOMKills == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d MiB: %d processes killed, at the limit %d times", ErrOverMemory, s.LimitMB, s.OOMKills, s.AtLimit)
}

// MemoryReporter is an Instance that tells what its memory limit did: the
// ns driver's cgroups count; a VM reports its configured size only (its
// memory is its guest's to manage: its OOMs happen inside it).
type MemoryReporter interface {
	Memory() (MemoryStatus, error)
}
