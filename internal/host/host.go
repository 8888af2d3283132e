// Package host is the seam between the orchestrator and the machines of the
// recovery site: standby images, recovery and test networks, disks prepared
// from recovery points, and machines booted by a driver. The orchestrator
// sees only the Host interface, so a later `haven host` worker on another
// machine can implement it over the network (docs/orchestrator.md); Local
// implements it in-process with internal/vnet and internal/machine.
//
// Every method is idempotent (a reconcile step): called again after a
// crash, a retry or a success, it looks at what exists and does only what
// is missing. Removing what is already gone succeeds.
//
// Every method that changes the site (all but SiteNS, Running and
// WaitHealthy) is an order of the HA leader: it carries the leader's
// epoch in its context (package fence), and a host that has obeyed a
// newer leader refuses it with an error that is fence.ErrStale.
package host

import (
	"context"
	"net/netip"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/overlay"
)

// Host runs recovery-site work for the orchestrator.
type Host interface {
	// EnsureSite makes a site (a namespace routing for nets, one bridge
	// each) and, when edge is set, joins it to that uplink (Edge: a
	// namespace, or a host interface; customers and the traffic manager
	// are there) and brings the host's tunnels up on it.
	EnsureSite(ctx context.Context, site string, nets []vnet.Network, edge string) error
	// RemoveSite removes the site and everything plugged into it.
	RemoveSite(ctx context.Context, site string) error
	// Publish makes rules the services machine name publishes on the
	// addresses of site's uplink (DNAT in, SNAT out; empty removes
	// them); a site without an uplink refuses. Unpublish removes them.
	// RemoveSite removes everything a site published.
	Publish(ctx context.Context, site, name string, rules []PublishRule) error
	Unpublish(ctx context.Context, site, name string) error
	// SiteNS is the namespace of a site, from which its machines are
	// probed.
	SiteNS(site string) string

	// PrepareDisk makes req.Target hold a disk of a recovery point.
	PrepareDisk(ctx context.Context, req DiskRequest) (*DiskResult, error)
	// RemoveDisk deletes a prepared disk.
	RemoveDisk(ctx context.Context, path string) error
	// UpdateStandby brings a machine's standby copy of a disk up to a
	// point by writing only the chunks that differ.
	UpdateStandby(ctx context.Context, machineName, disk, point string) (*DiskResult, error)

	// StartMachine boots spec on site unless it already runs there.
	StartMachine(ctx context.Context, site, driver string, spec machine.Spec) error
	// StopMachine stops it gracefully (killed after its stop timeout).
	StopMachine(ctx context.Context, site, name string) error
	// Running reports whether the machine runs on site.
	Running(site, name string) bool
	// WaitHealthy waits until the machine's health check passes.
	WaitHealthy(ctx context.Context, site string, spec machine.Spec) error
}

// StandbyKeeper is a host that lists the standby images it keeps and
// drops one: the server takes away what it no longer places there (a
// machine moved to another host, one no longer protected, the stale
// copies of a host back from a loss), or they would fill its disk.
type StandbyKeeper interface {
	Standbys(ctx context.Context) ([]StandbyImage, error)
	RemoveStandby(ctx context.Context, machine, disk string) error
}

// StandbyImage is one standby disk on a host.
type StandbyImage struct {
	Machine string `json:"machine"`
	Disk    string `json:"disk"`
	Point   string `json:"point,omitempty"` // "" while it is being written
}

// Fencer is a host a new HA leader tells its epoch before it gives any
// order: from then on the host refuses the orders of every leader before
// it, not only once one of the new leader's orders happens to reach it
// (a host the resumed job never touches again would otherwise still
// take a deposed leader's stop).
type Fencer interface {
	// Fence admits the epoch ctx carries, as an order would, doing
	// nothing else.
	Fence(ctx context.Context) error
}

// DiskRequest asks for one disk of one point at Target.
type DiskRequest struct {
	Machine string
	Disk    string
	Point   string // point ID
	Target  string
	// NoStandby forces a full restore even when a standby copy exists.
	NoStandby bool
}

// DiskResult says how a disk was prepared.
type DiskResult struct {
	Method       string `json:"method"` // standby-clone (clone + delta), restore (whole), in-place (delta onto an existing disk), existing
	Size         int64  `json:"size"`
	BytesWritten int64  `json:"bytes_written"`
	BytesFetched int64  `json:"bytes_fetched"`
	// BytesCompared is what of an existing disk was read to find the delta:
	// 0 when the disk was known to hold another point (a standby) and the
	// two manifests said what differs.
	BytesCompared int64         `json:"bytes_compared"`
	Duration      time.Duration `json:"duration_ns"`
}

// OverlayHost is a Host whose sites can span several hosts: a recovery
// host behind `haven host` (package hostapi) and Local with an Underlay.
// It is optional, so a Host that runs a whole site alone needs nothing.
type OverlayHost interface {
	Host
	// EnsureOverlay joins networks of site to the same networks on the
	// peers (the other hosts' underlay addresses; this host's own is
	// skipped), one VNI each, and removes the overlay of the site's
	// other networks. The site must exist (EnsureSite). EnsureSite
	// re-applies the last overlay of a site it keeps (a host restarted,
	// a device deleted by hand); a site it makes anew (networks changed,
	// RemoveSite) needs EnsureOverlay again. An empty Overlay removes
	// the site's overlay.
	EnsureOverlay(ctx context.Context, site string, o Overlay) error
	// UnderlayAddr is this host's own underlay address, where its peers
	// send the overlay's packets: the server builds every host's peer
	// list from them. Not valid (and no error) for a host without an
	// underlay, whose EnsureOverlay refuses.
	UnderlayAddr(ctx context.Context) (netip.Addr, error)
}

// Overlay is the desired overlay of one site.
type Overlay struct {
	Networks []overlay.Network `json:"networks"`
	Peers    []netip.Addr      `json:"peers"`
	// Transit is the site's routed link to the edge host's site, for a
	// site with an uplink on some host: this host's address on it, and
	// where the way out is when the uplink is not here (overlay.Transit).
	Transit *overlay.Transit `json:"transit,omitempty"`
}

// RunningChecker is a Host that can say it does not know: Running's
// bool has no room for "the host did not answer". A remote host
// implements it; callers that must tell "stopped" from "unreachable"
// (a host failure) look for it by type.
type RunningChecker interface {
	CheckRunning(ctx context.Context, site, name string) (bool, error)
}

// MemoryChecker is a Host that tells what a running machine's memory did
// (Local, and a remote host through hostapi): an ns machine's cgroup
// limit, use and OOM kills; a VM's configured size only. A machine not
// running on site is machine.ErrNotRunning.
type MemoryChecker interface {
	MachineMemory(ctx context.Context, site, name string) (machine.MemoryStatus, error)
}
