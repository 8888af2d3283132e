package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// teardownWait bounds the wait for QEMU to finish deleting an export or
// cancelling a job (both asynchronous).
const teardownWait = 30 * time.Second

// close tears the session down: exports, jobs, overlays, the NBD server,
// then settles the bitmaps (see settleBitmaps) and closes the monitor. It
// runs after every cycle, failed or not; what it cannot remove the next
// cycle's cleanStale does. It runs even when ctx is cancelled (the agent
// stopping mid-cycle): on a cancelled context every command would fail
// and QEMU would keep its NBD server, which the next start cannot reuse.
func (vm *qemuVM) close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*teardownWait)
	defer cancel()
	var errs []error
	for _, d := range vm.disks {
		if d.client != nil {
			d.client.Close()
			d.client = nil
		}
		if d.exported {
			errs = append(errs, vm.delExport(ctx, d.fleece))
			d.exported = false
		}
	}
	for _, d := range vm.disks {
		if vm.began {
			errs = append(errs, vm.cancelJob(ctx, d.job))
		}
		if d.added {
			errs = append(errs, vm.mon.Execute(ctx, "blockdev-del", map[string]any{"node-name": d.fleece}, nil))
			d.added = false
		}
		os.Remove(d.file)
	}
	if vm.nbdServer {
		// The socket stays if the server could not be stopped: it is how
		// the next cycle's cleanStale knows to stop it.
		if err := vm.mon.Execute(ctx, "nbd-server-stop", nil, nil); err != nil {
			errs = append(errs, err)
		} else {
			os.Remove(vm.socket)
		}
		vm.nbdServer = false
	}
	if vm.began {
		errs = append(errs, vm.settleBitmaps(ctx))
		vm.began = false
	}
	if err := errors.Join(errs...); err != nil {
		slog.Warn("qemu teardown incomplete; the next cycle removes the rest", "machine", vm.m.cfg.Name, "err", err)
	}
	vm.mon.Close()
}

// settleBitmaps: once the point is committed the old bitmap is spent;
// otherwise the new one is merged back into the old, which records again,
// so the next cycle still sees every write since the last committed point
// under the name its cache records.
func (vm *qemuVM) settleBitmaps(ctx context.Context) error {
	var errs []error
	for _, d := range vm.disks {
		if vm.committed {
			if d.oldBitmap != "" {
				errs = append(errs, vm.mon.Execute(ctx, "block-dirty-bitmap-remove", map[string]any{"node": d.node, "name": d.oldBitmap}, nil))
			}
			continue
		}
		var acts []action
		if d.oldBitmap != "" {
			acts = append(acts, action{"block-dirty-bitmap-enable", map[string]any{"node": d.node, "name": d.oldBitmap}},
				action{"block-dirty-bitmap-merge", map[string]any{"node": d.node, "target": d.oldBitmap, "bitmaps": []string{d.newBitmap}}})
		}
		acts = append(acts, action{"block-dirty-bitmap-remove", map[string]any{"node": d.node, "name": d.newBitmap}})
		errs = append(errs, vm.mon.Execute(ctx, "transaction", map[string]any{"actions": acts}, nil))
	}
	return errors.Join(errs...)
}

func (vm *qemuVM) delExport(ctx context.Context, id string) error {
	if err := vm.mon.Execute(ctx, "block-export-del", map[string]any{"id": id, "mode": "hard"}, nil); err != nil {
		return err
	}
	return vm.waitGone(ctx, "query-block-exports", "id", id)
}

func (vm *qemuVM) cancelJob(ctx context.Context, id string) error {
	if err := vm.mon.Execute(ctx, "block-job-cancel", map[string]any{"device": id, "force": true}, nil); err != nil {
		return err
	}
	return vm.waitGone(ctx, "query-block-jobs", "device", id)
}

// waitGone polls a query until no entry has field == id.
func (vm *qemuVM) waitGone(ctx context.Context, query, field, id string) error {
	deadline := time.Now().Add(teardownWait)
	for {
		var list []map[string]any
		if err := vm.mon.Execute(ctx, query, nil, &list); err != nil {
			return err
		}
		found := false
		for _, e := range list {
			found = found || e[field] == id
		}
		if !found {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still lists %s after %v", query, id, teardownWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cleanStale removes what an agent that crashed mid-cycle left in QEMU:
// exports, jobs and nodes named with hvPrefix, its NBD server, overlay
// files. Leftover bitmaps are handled per disk (dropOtherBitmaps).
func (vm *qemuVM) cleanStale(ctx context.Context) error {
	var exports, jobs, nodes []map[string]any
	if err := vm.mon.Execute(ctx, "query-block-exports", nil, &exports); err != nil {
		return err
	}
	for _, e := range exports {
		if id, _ := e["id"].(string); strings.HasPrefix(id, hvPrefix) {
			slog.Info("removing a stale fleecing export", "machine", vm.m.cfg.Name, "export", id)
			if err := vm.delExport(ctx, id); err != nil {
				return err
			}
		}
	}
	if err := vm.mon.Execute(ctx, "query-block-jobs", nil, &jobs); err != nil {
		return err
	}
	for _, j := range jobs {
		if id, _ := j["device"].(string); strings.HasPrefix(id, hvPrefix) {
			slog.Info("cancelling a stale fleecing job", "machine", vm.m.cfg.Name, "job", id)
			if err := vm.cancelJob(ctx, id); err != nil {
				return err
			}
		}
	}
	if err := vm.mon.Execute(ctx, "query-named-block-nodes", map[string]any{"flat": true}, &nodes); err != nil {
		return err
	}
	for _, n := range nodes {
		if id, _ := n["node-name"].(string); strings.HasPrefix(id, hvPrefix) {
			slog.Info("removing a stale fleecing node", "machine", vm.m.cfg.Name, "node", id)
			if err := vm.mon.Execute(ctx, "blockdev-del", map[string]any{"node-name": id}, nil); err != nil {
				return err
			}
		}
	}
	if _, err := os.Stat(vm.socket); err == nil {
		// Our socket exists: a previous agent ran the VM's NBD server
		// (stopping one that is not running only fails).
		vm.mon.Execute(ctx, "nbd-server-stop", nil, nil)
		os.Remove(vm.socket)
	}
	stale, _ := filepath.Glob(filepath.Join(vm.m.cfg.CloneDir, hvPrefix+"*.qcow2"))
	for _, f := range stale {
		os.Remove(f)
	}
	return nil
}
