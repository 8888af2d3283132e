package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"

	"github.com/haven-dr/haven/internal/nbd"
	"github.com/haven-dr/haven/internal/qmp"
)

// Provider qemu reads a running VM's disks at one instant through image
// fleecing (QEMU docs/interop/bitmaps.rst): one QMP transaction starts, for
// every disk, a blockdev-backup sync=none into a temporary qcow2 overlay
// backed by the disk (copy-before-write keeps the old data of blocks the
// guest writes afterwards), adds a new dirty bitmap and disables the
// previous one. The overlay is exported read-only over QEMU's NBD server
// with the previous bitmap, which then covers exactly the writes between
// the two points: only those chunks are read (docs/agent.md).

// hvPrefix marks everything the agent creates inside QEMU, so what a
// crashed agent left is recognised and removed by the next cycle.
const hvPrefix = "hv-"

// qemuVM is one machine's fleecing session during one cycle.
type qemuVM struct {
	m         *machine
	mon       qmp.Monitor
	socket    string // NBD server's unix socket
	nbdServer bool
	disks     []*qemuDisk
	fullRead  map[string]string // disk -> why it is read whole
	read      atomic.Int64      // bytes read through NBD
	committed bool              // the point is in the vault: drop the old bitmaps
	began     bool              // the transaction ran: bitmaps changed
}

// qemuDisk is one disk of the VM in the session.
type qemuDisk struct {
	name      string // disk name in the vault
	node      string // QEMU node the backup and the bitmaps attach to
	size      int64
	fleece    string // node name of the overlay (and its export name)
	file      string
	job       string
	oldBitmap string // trusted: covers (previous point, this point]; "" reads all
	newBitmap string // starts at this point
	added     bool   // fleece node added
	exported  bool
	client    *nbd.Client
}

func randomTag() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// openQemu connects to the VM's monitor, removes what a crashed agent left,
// picks the disks, decides which bitmaps to trust and prepares the
// overlays; nothing the guest sees has happened yet.
func openQemu(ctx context.Context, m *machine, stateDir string) (_ *qemuVM, err error) {
	mon, err := dialMonitor(ctx, m.cfg)
	if err != nil {
		return nil, err
	}
	vm := &qemuVM{m: m, mon: mon, socket: nbdSocket(stateDir, m.cfg.Name), fullRead: map[string]string{}}
	defer func() {
		if err != nil {
			vm.close(context.WithoutCancel(ctx))
		}
	}()
	if err := vm.cleanStale(ctx); err != nil {
		return nil, fmt.Errorf("removing a previous agent's leftovers: %w", err)
	}
	blocks, err := vm.queryBlock(ctx)
	if err != nil {
		return nil, err
	}
	if vm.disks, err = selectDisks(m.cfg, blocks); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(m.cfg.CloneDir, 0o700); err != nil {
		return nil, err
	}
	tag := randomTag()
	for i, d := range vm.disks {
		d.fleece = fmt.Sprintf("%sf%s-%d", hvPrefix, tag, i)
		d.job = fmt.Sprintf("%sj%s-%d", hvPrefix, tag, i)
		d.file = filepath.Join(m.cfg.CloneDir, d.fleece+".qcow2")
		d.newBitmap = hvPrefix + randomTag() + randomTag()
		var why string
		d.oldBitmap, why = trust(m.tracker(d.name).cache, d, blocks[d.node].bitmaps)
		if why != "" {
			vm.fullRead[d.name] = why
		}
		if err := vm.dropOtherBitmaps(ctx, d, blocks[d.node].bitmaps); err != nil {
			return nil, err
		}
		if err := vm.addFleece(ctx, d); err != nil {
			return nil, err
		}
	}
	return vm, nil
}

// addFleece creates the overlay file at the disk's size and adds it as a
// node backed by the disk.
func (vm *qemuVM) addFleece(ctx context.Context, d *qemuDisk) error {
	out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", d.file, fmt.Sprint(d.size)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("disk %s: creating the fleecing overlay: %w: %s", d.name, err, out)
	}
	err = vm.mon.Execute(ctx, "blockdev-add", map[string]any{"driver": "qcow2", "node-name": d.fleece,
		"file": map[string]any{"driver": "file", "filename": d.file}, "backing": d.node}, nil)
	if err != nil {
		os.Remove(d.file)
		return fmt.Errorf("disk %s: %w", d.name, err)
	}
	d.added = true
	return nil
}

type action struct {
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
}

// begin is the point's instant: one transaction for all disks of the VM.
func (vm *qemuVM) begin(ctx context.Context, granularity int) error {
	var acts []action
	for _, d := range vm.disks {
		acts = append(acts, action{"blockdev-backup", map[string]any{"job-id": d.job, "device": d.node, "target": d.fleece, "sync": "none"}},
			action{"block-dirty-bitmap-add", map[string]any{"node": d.node, "name": d.newBitmap, "granularity": granularity, "persistent": false}})
		if d.oldBitmap != "" {
			acts = append(acts, action{"block-dirty-bitmap-disable", map[string]any{"node": d.node, "name": d.oldBitmap}})
		}
	}
	if err := vm.mon.Execute(ctx, "transaction", map[string]any{"actions": acts}, nil); err != nil {
		return fmt.Errorf("machine %s: fleecing transaction: %w", vm.m.cfg.Name, err)
	}
	vm.began = true
	return nil
}

// export serves the overlays read-only over NBD and connects to them.
func (vm *qemuVM) export(ctx context.Context) error {
	os.Remove(vm.socket)
	err := vm.mon.Execute(ctx, "nbd-server-start", map[string]any{"addr": map[string]any{"type": "unix", "data": map[string]any{"path": vm.socket}}}, nil)
	if err != nil {
		return fmt.Errorf("machine %s: %w", vm.m.cfg.Name, err)
	}
	vm.nbdServer = true
	for _, d := range vm.disks {
		args := map[string]any{"type": "nbd", "id": d.fleece, "node-name": d.fleece, "name": d.fleece, "writable": false}
		ctxs := []string{nbd.BaseAllocation}
		if d.oldBitmap != "" {
			args["bitmaps"] = []string{d.oldBitmap}
			ctxs = append(ctxs, nbd.DirtyPrefix+d.oldBitmap)
		}
		if err := vm.mon.Execute(ctx, "block-export-add", args, nil); err != nil {
			return fmt.Errorf("machine %s: disk %s: %w", vm.m.cfg.Name, d.name, err)
		}
		d.exported = true
		if d.client, err = nbd.Dial(ctx, vm.socket, nbd.Options{Export: d.fleece, Contexts: ctxs}); err != nil {
			return fmt.Errorf("machine %s: disk %s: %w", vm.m.cfg.Name, d.name, err)
		}
		if d.client.Size() != d.size {
			return fmt.Errorf("machine %s: disk %s: export of %d bytes, QEMU reported %d", vm.m.cfg.Name, d.name, d.client.Size(), d.size)
		}
	}
	return nil
}

// ReadAt counts what the agent reads from the VM (the point of dirty
// bitmaps is to read little).
type countingReader struct {
	c *nbd.Client
	n *atomic.Int64
}

func (r countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.c.ReadAt(p, off)
	r.n.Add(int64(n))
	return n, err
}

var errNoDisks = errors.New("no writable disks")
