package hostapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/host/backrep"
)

// Replication back (reprotect) of the machines a host runs: the server
// orders it by plan, the host's agent code reads the disks here and
// writes points to the vault (package backrep). Each order is fenced by
// the leader's epoch first, as every other order.

// ErrNoVault: the host has no vault configured, so it can neither
// prepare disks from points nor replicate back.
var ErrNoVault = errors.New("this host has no vault configured (vault: in its config)")

type cycleReq struct {
	Group string `json:"group"`
}

type snapshotReq struct {
	Machine string `json:"machine"`
}

type snapshotResp struct {
	Points map[string]string `json:"points"`
}

// backOrder admits the caller's epoch and returns the manager, or why
// this host takes no such order.
func (s *Server) backOrder(ctx context.Context) (*backrep.Manager, error) {
	if s.Back == nil {
		return nil, fmt.Errorf("%w: it cannot replicate back the machines it runs", ErrNoVault)
	}
	if err := s.B.Fence(ctx); err != nil {
		return nil, err
	}
	return s.Back, nil
}

func (s *Server) ensureReplication(ctx context.Context, r *http.Request) (any, error) {
	var req host.Replication
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	for i, m := range req.Machines {
		for j, d := range m.Disks {
			p, err := s.localPath(d.Path)
			if err != nil {
				return nil, fmt.Errorf("machine %s disk %s: %w", m.Name, d.Name, err)
			}
			req.Machines[i].Disks[j].Path = p
		}
	}
	b, err := s.backOrder(ctx)
	if err != nil {
		return nil, err
	}
	return nil, b.Ensure(r.PathValue("plan"), req)
}

func (s *Server) cycleReplication(ctx context.Context, r *http.Request) (any, error) {
	var req cycleReq
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	b, err := s.backOrder(ctx)
	if err != nil {
		return nil, err
	}
	return nil, b.Cycle(ctx, r.PathValue("plan"), req.Group)
}

func (s *Server) snapshotReplication(ctx context.Context, r *http.Request) (any, error) {
	var req snapshotReq
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	b, err := s.backOrder(ctx)
	if err != nil {
		return nil, err
	}
	ids, err := b.Snapshot(ctx, r.PathValue("plan"), req.Machine)
	return snapshotResp{ids}, err
}

func (s *Server) startReplication(ctx context.Context, r *http.Request) (any, error) {
	b, err := s.backOrder(ctx)
	if err != nil {
		return nil, err
	}
	return nil, b.Start(r.PathValue("plan"))
}

func (s *Server) stopReplication(ctx context.Context, r *http.Request) (any, error) {
	b, err := s.backOrder(ctx)
	if err != nil {
		return nil, err
	}
	return nil, b.Stop(r.PathValue("plan"))
}

func (s *Server) dropReplication(ctx context.Context, r *http.Request) (any, error) {
	b, err := s.backOrder(ctx)
	if err != nil {
		return nil, err
	}
	return nil, b.Drop(r.PathValue("plan"))
}

var _ host.BackReplicator = (*Client)(nil)

func replPath(plan string) string { return "/v1/replication/" + seg(plan) }

// ReplicationReady asks the host whether it has a vault.
func (c *Client) ReplicationReady(ctx context.Context) error {
	i, err := c.Info(ctx)
	if err != nil {
		return err
	}
	if !i.Vault {
		return fmt.Errorf("host %s: %w", c.URL, ErrNoVault)
	}
	return nil
}

// EnsureReplication sends the disk paths as PrepareDisk does: relative
// to the disk directory, mapped onto the host's.
func (c *Client) EnsureReplication(ctx context.Context, plan string, r host.Replication) error {
	out := host.Replication{Machines: make([]host.ReplicatedMachine, len(r.Machines))}
	for i, m := range r.Machines {
		out.Machines[i] = m
		out.Machines[i].Disks = make([]host.ReplicatedDisk, len(m.Disks))
		for j, d := range m.Disks {
			p, err := c.wirePath(d.Path)
			if err != nil {
				return fmt.Errorf("machine %s disk %s: %w", m.Name, d.Name, err)
			}
			out.Machines[i].Disks[j] = host.ReplicatedDisk{Name: d.Name, Path: p}
		}
	}
	return c.call(ctx, "PUT", replPath(plan), out, nil)
}

func (c *Client) CycleReplication(ctx context.Context, plan, group string) error {
	return c.call(ctx, "POST", replPath(plan)+"/cycle", cycleReq{group}, nil)
}

func (c *Client) SnapshotReplication(ctx context.Context, plan, machine string) (map[string]string, error) {
	var r snapshotResp
	if err := c.call(ctx, "POST", replPath(plan)+"/snapshot", snapshotReq{machine}, &r); err != nil {
		return nil, err
	}
	return r.Points, nil
}

func (c *Client) StartReplication(ctx context.Context, plan string) error {
	return c.call(ctx, "PUT", replPath(plan)+"/running", nil, nil)
}

func (c *Client) StopReplication(ctx context.Context, plan string) error {
	return c.call(ctx, "DELETE", replPath(plan)+"/running", nil, nil)
}

func (c *Client) DropReplication(ctx context.Context, plan string) error {
	return c.call(ctx, "DELETE", replPath(plan), nil, nil)
}
