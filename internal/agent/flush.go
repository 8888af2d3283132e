package agent

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// flushEvery is how often the agent starts writeback of reflink disks.
const flushEvery = 2 * time.Second

// flushAhead starts writeback of the group's reflink disk images every
// flushEvery (SYNC_FILE_RANGE_WRITE: asynchronous, no wait). FICLONE must
// flush a file's dirty pages before cloning it, and under heavy random
// writes that flush took seconds between the capture instant and the
// clone, all of it added to the RPO; flushing ahead keeps little dirty.
func (g *group) flushAhead(ctx context.Context) {
	var files []*os.File
	for _, m := range g.machines {
		if m.cfg.Provider != ProviderReflink {
			continue
		}
		for _, d := range m.cfg.Disks {
			if f, err := os.Open(d.Path); err == nil {
				files = append(files, f)
			}
		}
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if len(files) == 0 {
		return
	}
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, f := range files {
			unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
		}
	}
}
