package host

import (
	"context"
	"errors"
)

// BackReplicator is a host that replicates the recovered machines it
// runs back into the vault itself (reprotect), with the agent's code,
// reading their disks where they are: a `haven host` with a vault. The
// server gives the orders; the host keeps replicating between them.
//
// Every call names a plan and is idempotent: an ensure of the same
// Replication, a start of a running loop, a stop of a stopped one, a
// drop of an unknown plan do nothing. Orders carry the leader's epoch
// (package fence) like every other order to a host.
type BackReplicator interface {
	// ReplicationReady says whether the host can replicate back at all
	// (nil) or why not (no vault configured), doing nothing.
	ReplicationReady(ctx context.Context) error
	// EnsureReplication makes the host hold plan's machines as r
	// describes; a different r replaces the plan's (stopping its loop).
	EnsureReplication(ctx context.Context, plan string, r Replication) error
	// CycleReplication takes one point of every machine of group the
	// host holds for plan, now.
	CycleReplication(ctx context.Context, plan, group string) error
	// SnapshotReplication takes a point of machine's group (its members
	// on this host), loop stopped or not, and returns each member's new
	// point ID.
	SnapshotReplication(ctx context.Context, plan, machine string) (map[string]string, error)
	// StartReplication starts the periodic loop; it survives the host's
	// restart until StopReplication or DropReplication.
	StartReplication(ctx context.Context, plan string) error
	// StopReplication stops the loop and waits for a cycle in flight.
	StopReplication(ctx context.Context, plan string) error
	// DropReplication stops the loop and forgets the plan (its change
	// tracking and clones too).
	DropReplication(ctx context.Context, plan string) error
}

// ErrNoReplication: the host holds no replication back of that plan
// (never ensured, or dropped).
var ErrNoReplication = errors.New("no replication back of that plan on this host")

// Replication is what a host replicates back for one plan: the machines
// it runs and their disks. A disk's Path is as the host's other disk
// paths are (relative to its disk directory on the wire).
type Replication struct {
	Machines []ReplicatedMachine `json:"machines"`
}

// ReplicatedMachine is one recovered machine and its consistency group.
type ReplicatedMachine struct {
	Name  string           `json:"name"`
	Group string           `json:"group"`
	Disks []ReplicatedDisk `json:"disks"`
}

// ReplicatedDisk is one disk file of a recovered machine.
type ReplicatedDisk struct {
	Name string `json:"name"`
	Path string `json:"path"`
}
