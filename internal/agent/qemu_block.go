package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/haven-dr/haven/internal/vault"
)

// blockInfo is a disk as query-block reports it.
type blockInfo struct {
	device, qdev, node string
	readOnly           bool
	size               int64
	bitmaps            map[string]bitmapInfo
}

type bitmapInfo struct {
	Name      string `json:"name"`
	Recording bool   `json:"recording"`
	Busy      bool   `json:"busy"`
}

// queryBlock returns the VM's inserted disks by node name.
func (vm *qemuVM) queryBlock(ctx context.Context) (map[string]*blockInfo, error) {
	var raw []struct {
		Device   string `json:"device"`
		Qdev     string `json:"qdev"`
		Inserted *struct {
			NodeName string `json:"node-name"`
			RO       bool   `json:"ro"`
			Image    struct {
				VirtualSize int64 `json:"virtual-size"`
			} `json:"image"`
			Bitmaps []bitmapInfo `json:"dirty-bitmaps"`
		} `json:"inserted"`
	}
	if err := vm.mon.Execute(ctx, "query-block", nil, &raw); err != nil {
		return nil, err
	}
	out := map[string]*blockInfo{}
	for _, b := range raw {
		if b.Inserted == nil {
			continue // an empty drive (CD-ROM without medium)
		}
		bi := &blockInfo{device: b.Device, qdev: b.Qdev, node: b.Inserted.NodeName, readOnly: b.Inserted.RO,
			size: b.Inserted.Image.VirtualSize, bitmaps: map[string]bitmapInfo{}}
		for _, bm := range b.Inserted.Bitmaps {
			bi.bitmaps[bm.Name] = bm
		}
		out[bi.node] = bi
	}
	return out, nil
}

// selectDisks picks the configured disks, or every writable one, named
// by device (or node name when QEMU has no device name: -blockdev).
func selectDisks(cfg MachineConfig, blocks map[string]*blockInfo) ([]*qemuDisk, error) {
	var out []*qemuDisk
	if len(cfg.Disks) == 0 {
		for _, b := range blocks {
			if b.readOnly {
				continue
			}
			name := b.device
			if name == "" {
				name = b.node
			}
			if err := vault.ValidName("disk", name); err != nil {
				return nil, fmt.Errorf("QEMU disk %q (node %s) cannot name a disk in the vault (%v): list the disks with names in the config", name, b.node, err)
			}
			out = append(out, &qemuDisk{name: name, node: b.node, size: b.size})
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("machine %s: %w reported by QEMU (query-block)", cfg.Name, errNoDisks)
		}
		sortDisks(out)
		return out, nil
	}
	for _, dc := range cfg.Disks {
		var hit *blockInfo
		for _, b := range blocks {
			if dc.Device == b.device || dc.Device == b.node || (b.qdev != "" && (dc.Device == b.qdev || strings.HasSuffix(b.qdev, "/"+dc.Device) ||
				qdevID(b.qdev) == dc.Device)) {
				hit = b
			}
		}
		if hit == nil {
			return nil, fmt.Errorf("disk %s: QEMU has no disk %q (query-block lists: %s)", dc.Name, dc.Device, listBlocks(blocks))
		}
		if hit.readOnly {
			return nil, fmt.Errorf("disk %s: QEMU disk %q is read-only", dc.Name, dc.Device)
		}
		out = append(out, &qemuDisk{name: dc.Name, node: hit.node, size: hit.size})
	}
	return out, nil
}

func sortDisks(ds []*qemuDisk) {
	slices.SortFunc(ds, func(a, b *qemuDisk) int { return strings.Compare(a.name, b.name) })
}

func listBlocks(blocks map[string]*blockInfo) string {
	var s []string
	for _, b := range blocks {
		s = append(s, fmt.Sprintf("device %q node %q qdev %q", b.device, b.node, b.qdev))
	}
	return strings.Join(s, "; ")
}

// trust returns the bitmap that provably covers every write since the
// tracked previous point, or why there is none. It must be the one
// recorded with that point's chunk IDs (the cache is durable and checked
// against the vault, so an agent restart keeps it), exist in this QEMU
// process (non-persistent bitmaps die with QEMU, so a restart or crash
// loses it), still record (a disabled one stopped at an interrupted
// cycle), and the disk must have its old size.
func trust(c *diskCache, d *qemuDisk, bitmaps map[string]bitmapInfo) (string, string) {
	switch bm, ok := bitmaps[c.bitmap()]; {
	case c == nil:
		return "", "no tracked previous point"
	case c.Bitmap == "":
		return "", "the previous point has no dirty bitmap"
	case !ok:
		return "", fmt.Sprintf("dirty bitmap %s is gone: QEMU restarted since the previous point", c.Bitmap)
	case !bm.Recording || bm.Busy:
		return "", fmt.Sprintf("dirty bitmap %s is not recording (an interrupted cycle)", c.Bitmap)
	case c.Size != d.size:
		return "", fmt.Sprintf("disk resized from %d to %d bytes", c.Size, d.size)
	}
	return c.Bitmap, ""
}

// dropOtherBitmaps removes the agent's bitmaps other than the trusted one:
// leftovers of interrupted cycles, which nothing will read.
func (vm *qemuVM) dropOtherBitmaps(ctx context.Context, d *qemuDisk, bitmaps map[string]bitmapInfo) error {
	for name := range bitmaps {
		if strings.HasPrefix(name, hvPrefix) && name != d.oldBitmap {
			if err := vm.mon.Execute(ctx, "block-dirty-bitmap-remove", map[string]any{"node": d.node, "name": name}, nil); err != nil {
				return fmt.Errorf("disk %s: %w", d.name, err)
			}
		}
	}
	return nil
}

// qdevID is the id of a -device from its path in query-block: a
// virtio-blk-pci proxy (libvirt's disks, alias "virtio-disk0" or
// "ua-...") reports "/machine/peripheral/<id>/virtio-backend".
func qdevID(qdev string) string {
	rest, ok := strings.CutPrefix(qdev, "/machine/peripheral/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}
