package server

import (
	"context"
	"errors"

	"github.com/haven-dr/haven/internal/host"
)

// A fenced host replicates back as its host does (host.BackReplicator);
// every call but ReplicationReady is an order and leaves fenced.

var errNoBackReplication = errors.New("this recovery host cannot replicate back the machines it runs")

func (h fencedHost) backReplicator() (host.BackReplicator, error) {
	if b, ok := h.Host.(host.BackReplicator); ok {
		return b, nil
	}
	return nil, errNoBackReplication
}

func (h fencedHost) ReplicationReady(ctx context.Context) error {
	b, err := h.backReplicator()
	if err != nil {
		return err
	}
	return b.ReplicationReady(ctx)
}

// backOrder fences one order and finds the host's replicator.
func (h fencedHost) backOrder(ctx context.Context) (context.Context, host.BackReplicator, error) {
	ctx, err := h.enter(ctx)
	if err != nil {
		return nil, nil, err
	}
	b, err := h.backReplicator()
	return ctx, b, err
}

func (h fencedHost) EnsureReplication(ctx context.Context, plan string, r host.Replication) error {
	ctx, b, err := h.backOrder(ctx)
	if err != nil {
		return err
	}
	return b.EnsureReplication(ctx, plan, r)
}

func (h fencedHost) CycleReplication(ctx context.Context, plan, group string) error {
	ctx, b, err := h.backOrder(ctx)
	if err != nil {
		return err
	}
	return b.CycleReplication(ctx, plan, group)
}

func (h fencedHost) SnapshotReplication(ctx context.Context, plan, machine string) (map[string]string, error) {
	ctx, b, err := h.backOrder(ctx)
	if err != nil {
		return nil, err
	}
	return b.SnapshotReplication(ctx, plan, machine)
}

func (h fencedHost) StartReplication(ctx context.Context, plan string) error {
	ctx, b, err := h.backOrder(ctx)
	if err != nil {
		return err
	}
	return b.StartReplication(ctx, plan)
}

func (h fencedHost) StopReplication(ctx context.Context, plan string) error {
	ctx, b, err := h.backOrder(ctx)
	if err != nil {
		return err
	}
	return b.StopReplication(ctx, plan)
}

func (h fencedHost) DropReplication(ctx context.Context, plan string) error {
	ctx, b, err := h.backOrder(ctx)
	if err != nil {
		return err
	}
	return b.DropReplication(ctx, plan)
}
