package agent

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"time"
)

// qemuRestorable says whether a qemu VM's disks may be written in place:
// every disk names its raw image file (path), and QEMU is gone. A running
// QEMU caches and writes the same file; a qcow2 file would be destroyed by
// raw data (restore it with `haven restore` and qemu-img convert instead).
func qemuRestorable(ctx context.Context, m *machine) error {
	name := m.cfg.Name
	if len(m.cfg.Disks) == 0 {
		return ctlErrorf(http.StatusNotImplemented, "restore %s: provider qemu: list the disks with device and path (the image file to write) in the agent's config", name)
	}
	for _, d := range m.cfg.Disks {
		if d.Path == "" {
			return ctlErrorf(http.StatusNotImplemented, "restore %s: disk %s has no path: the agent reads a qemu VM through QEMU and needs the image file to write it", name, d.Name)
		}
		f, err := os.Open(d.Path)
		if err != nil {
			return ctlErrorf(http.StatusConflict, "restore %s: disk %s: %v", name, d.Name, err)
		}
		head := make([]byte, 4)
		_, err = f.ReadAt(head, 0)
		f.Close()
		if err == nil && bytes.Equal(head, []byte("QFI\xfb")) {
			return ctlErrorf(http.StatusNotImplemented, "restore %s: disk %s (%s) is qcow2: the agent restores raw images only", name, d.Name, d.Path)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if c, err := dialMonitor(dctx, m.cfg); err == nil {
		c.Close()
		return ctlErrorf(http.StatusConflict, "restore %s: QEMU still answers on %s: stop the VM first", name, monitorName(m.cfg))
	}
	return nil
}
