// Package hostapi is `haven host`: a recovery host's host.Host served over
// HTTPS, and the Client that implements host.Host over it, so the server
// drives a remote host through the same seam as its in-process one.
//
// Every call names what it acts on by (site, machine) or by a disk path
// relative to the host's disk directory, and every call is idempotent
// (the seam's contract), so the client retries one whose answer was lost.
// The HA leader's epoch travels in fence.Header and the host checks it
// against the newest it has obeyed: a deposed leader's order is a 409.
//
//	GET    /v1/info
//	PUT    /v1/epoch                                 Fence (a new leader's epoch)
//	PUT    /v1/sites/{site}                          EnsureSite
//	DELETE /v1/sites/{site}                          RemoveSite
//	PUT    /v1/sites/{site}/overlay                  EnsureOverlay
//	PUT    /v1/sites/{site}/published/{name}         Publish
//	DELETE /v1/sites/{site}/published/{name}         Unpublish
//	PUT    /v1/sites/{site}/machines/{name}          StartMachine
//	DELETE /v1/sites/{site}/machines/{name}          StopMachine
//	GET    /v1/sites/{site}/machines/{name}          Running
//	POST   /v1/sites/{site}/machines/{name}/healthy  WaitHealthy
//	GET    /v1/sites/{site}/machines/{name}/memory   MachineMemory
//	PUT    /v1/replication/{plan}                    EnsureReplication (host.BackReplicator)
//	DELETE /v1/replication/{plan}                    DropReplication
//	POST   /v1/replication/{plan}/cycle              CycleReplication
//	POST   /v1/replication/{plan}/snapshot           SnapshotReplication
//	PUT    /v1/replication/{plan}/running            StartReplication
//	DELETE /v1/replication/{plan}/running            StopReplication
//	POST   /v1/disks/prepare                         PrepareDisk
//	POST   /v1/disks/remove                          RemoveDisk
//	POST   /v1/standby/update                        UpdateStandby
//	GET    /v1/standby/{machine}/{disk}              StandbyPoint
//	GET    /v1/standby                               Standbys
//	DELETE /v1/standby/{machine}/{disk}              RemoveStandby
//
// A call's deadline travels as TimeoutHeader (milliseconds left), so the
// host stops waiting when the caller does, whatever the connection does.
package hostapi

import (
	"context"
	"errors"
	"net/netip"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/host/backrep"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/haven-dr/haven/internal/vnet"
)

// TimeoutHeader carries the milliseconds left of the caller's deadline.
const TimeoutHeader = "Haven-Timeout-Ms"

// Info describes a host.
type Info struct {
	ID string `json:"id"` // site namespaces are "<id>-<site>"
	// Underlay is the host's overlay address ("" without an overlay):
	// the peer list the server gives every host is their Underlays.
	Underlay netip.Addr `json:"underlay,omitzero"`
	Edge     string     `json:"edge,omitempty"` // the uplink sites with one get here
	Vault    bool       `json:"vault"`          // it prepares disks from points
	Version  string     `json:"version"`
}

type siteReq struct {
	Networks []vnet.Network `json:"networks"`
	// Uplink: the site wants the host's edge (the server's edge string
	// names places on the server's machine, not on this one).
	Uplink bool `json:"uplink"`
}

type startReq struct {
	Driver string       `json:"driver"`
	Spec   machine.Spec `json:"spec"`
}

type runningResp struct {
	Running bool `json:"running"`
}

type pathReq struct {
	Path string `json:"path"`
}

type standbyReq struct {
	Machine string `json:"machine"`
	Disk    string `json:"disk"`
	Point   string `json:"point"`
}

type standbyResp struct {
	Point string `json:"point"`
}

type standbysResp struct {
	Standbys []host.StandbyImage `json:"standbys"`
}

type publishReq struct {
	Rules []host.PublishRule `json:"rules"`
}

// errorResp is every refusal: the message and a kind the client turns
// back into the sentinel callers test with errors.Is.
type errorResp struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}

// kinds maps sentinels to wire names; the first match wins.
var kinds = []struct {
	name string
	err  error
	code int
}{
	{"stale", fence.ErrStale, 409},
	{"site_busy", host.ErrSiteBusy, 409},
	{"bad_spec", machine.ErrBadSpec, 400},
	{"unhealthy", machine.ErrUnhealthy, 503},
	{"not_running", machine.ErrNotRunning, 409},
	{"no_point", vault.ErrNoPoint, 404},
	{"no_disk", vault.ErrNoDisk, 404},
	{"unknown_network", vnet.ErrUnknown, 404},
	{"bad_request", errBadRequest, 400},
	{"no_replication", host.ErrNoReplication, 404},
	{"bad_order", backrep.ErrBadOrder, 400},
	{"no_group", agent.ErrNoGroup, 404},
	{"no_vault", ErrNoVault, 409},
	{"deadline", context.DeadlineExceeded, 504},
	{"canceled", context.Canceled, 499},
}

var errBadRequest = errors.New("bad request")

func kindOf(err error) (string, int) {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name, k.code
		}
	}
	return "", 500
}

func sentinel(kind string) error {
	for _, k := range kinds {
		if k.name == kind {
			return k.err
		}
	}
	return nil
}
