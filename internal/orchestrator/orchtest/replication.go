package orchtest

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/host/backrep"
)

// BackHost is the fake host replicating back what it runs, as a remote
// `haven host` with a vault does: the host side's real code (package
// backrep) in process, reading the disk files the fake restored and
// writing to the real vault. It outlives the orchestrators of a test, as
// a host outlives a server's restart. Its calls are recorded and take
// injected failures like the host's others ("Replication.Cycle" ...).
type BackHost struct {
	*Host
	Back *backrep.Manager
	// Ready is what ReplicationReady says: nil for a host with a vault.
	Ready error
}

var _ host.BackReplicator = (*BackHost)(nil)

// NewBackHost gives h replication back, keeping its orders under dir.
func NewBackHost(h *Host, dir string) (*BackHost, error) {
	m, err := backrep.Open(filepath.Join(dir, "replication"), filepath.Join(dir, "clones"), h.v,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, err
	}
	return &BackHost{Host: h, Back: m}, nil
}

func (b *BackHost) ReplicationReady(ctx context.Context) error {
	if err := b.Ping(ctx); err != nil {
		return err
	}
	return b.Ready
}

func (b *BackHost) EnsureReplication(ctx context.Context, plan string, r host.Replication) error {
	done, err := b.enter(ctx, Call{Method: "Replication.Ensure", Site: plan})
	if err != nil {
		return err
	}
	return done(b.Back.Ensure(plan, r))
}

func (b *BackHost) CycleReplication(ctx context.Context, plan, group string) error {
	done, err := b.enter(ctx, Call{Method: "Replication.Cycle", Site: plan, Machine: group})
	if err != nil {
		return err
	}
	return done(b.Back.Cycle(ctx, plan, group))
}

func (b *BackHost) SnapshotReplication(ctx context.Context, plan, machine string) (map[string]string, error) {
	done, err := b.enter(ctx, Call{Method: "Replication.Snapshot", Site: plan, Machine: machine})
	if err != nil {
		return nil, err
	}
	ids, err := b.Back.Snapshot(ctx, plan, machine)
	return ids, done(err)
}

func (b *BackHost) StartReplication(ctx context.Context, plan string) error {
	done, err := b.enter(ctx, Call{Method: "Replication.Start", Site: plan})
	if err != nil {
		return err
	}
	return done(b.Back.Start(plan))
}

func (b *BackHost) StopReplication(ctx context.Context, plan string) error {
	done, err := b.enter(ctx, Call{Method: "Replication.Stop", Site: plan})
	if err != nil {
		return err
	}
	return done(b.Back.Stop(plan))
}

func (b *BackHost) DropReplication(ctx context.Context, plan string) error {
	done, err := b.enter(ctx, Call{Method: "Replication.Drop", Site: plan})
	if err != nil {
		return err
	}
	return done(b.Back.Drop(plan))
}
