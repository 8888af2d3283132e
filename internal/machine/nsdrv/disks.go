package nsdrv

import (
	"fmt"
	"os"
	"strconv"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/machine/partition"
)

// disks are a machine's attached loop devices, in the order the child
// receives them, and what the child mounts from them.
type disks struct {
	devs   []*loop.Device
	mounts []childMount
}

func (d disks) close() {
	for _, l := range d.devs {
		l.Close()
	}
}

// attachDisks puts each disk, or the partition of it to mount, on a loop
// device of its own (offset and size limit: no partition scanning, so no
// partition device nodes to wait for). When the root partition is not
// named, every candidate is attached and the child mounts the first that
// holds the init; the others autoclear once the child closes them.
func attachDisks(spec machine.Spec) (disks, error) {
	var out disks
	for i, disk := range spec.Disks {
		parts, err := choose(disk, i == 0)
		if err != nil {
			out.close()
			return disks{}, fmt.Errorf("disk %s: %w", disk.Name, err)
		}
		m := childMount{Disk: disk.Name, Target: disk.Mount}
		if i == 0 {
			m.Target = "/"
		}
		for _, p := range parts {
			tag := disk.Name
			if p.part.Number != 0 {
				tag += ".p" + strconv.Itoa(p.part.Number)
			}
			l, err := loop.AttachRange(disk.Path, LoopName(spec.Name, tag), false, p.part.Start, p.part.Size)
			if err != nil {
				out.close()
				return disks{}, fmt.Errorf("disk %s: %w", disk.Name, err)
			}
			out.devs = append(out.devs, l)
			m.Devs = append(m.Devs, childDev{Dev: l.Path, FSType: p.fstype, Part: p.part.Number})
		}
		out.mounts = append(out.mounts, m)
	}
	return out, nil
}

type candidate struct {
	part   partition.Partition // Number 0: the whole disk
	fstype string
}

// choose reads the disk's partition table and returns what may be mounted
// from it: the whole disk when it has no table, the partition the spec
// names, the root candidates for the root disk, else the first data
// candidate holding a known file system. The file system type is the
// spec's or found by magic.
func choose(disk machine.Disk, root bool) ([]candidate, error) {
	f, err := os.Open(disk.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	tab, err := partition.Read(f, st.Size())
	if err != nil {
		return nil, err
	}
	var parts []partition.Partition
	switch {
	case tab.Scheme == partition.None:
		if disk.Partition != 0 {
			return nil, fmt.Errorf("%w: partition %d of a disk without a partition table", machine.ErrBadSpec, disk.Partition)
		}
		parts = []partition.Partition{{}}
	case disk.Partition != 0:
		p, err := tab.Find(disk.Partition)
		if err != nil {
			return nil, err
		}
		parts = []partition.Partition{p}
	case root:
		parts = tab.RootCandidates()
	default:
		parts = tab.DataCandidates()
	}
	var out []candidate
	var lastErr error
	for _, p := range parts {
		fs := disk.FSType
		if fs == "" {
			if fs, err = partition.FSType(f, p.Start); err != nil {
				lastErr = err // not a file system we know: not the root either
				continue
			}
		}
		out = append(out, candidate{p, fs})
		if !root {
			break // the first file system is the data disk's
		}
	}
	if len(out) == 0 {
		if lastErr == nil {
			lastErr = fmt.Errorf("%w: no Linux partition in the %s table", partition.ErrNoPartition, tab.Scheme)
		}
		return nil, lastErr
	}
	return out, nil
}
