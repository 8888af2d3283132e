package orchestrator

import (
	"path/filepath"
	"strings"
	"testing"
)

// A failover's disks, recorded by one server, are removed by another
// whose disk directory is elsewhere (HA servers on machines of their own,
// state_dir at different paths): the undo names them in its own disk
// directory, the only one a remote host maps to its disks.
func TestUndoByServerWithOtherDiskDir(t *testing.T) {
	w := newWorld(t)
	w.run(PlannedFailover, "alpha", Params{})
	w.diskDir = filepath.Join(w.env.Dir, "other-server-disks")
	w.restart()
	w.resetCalls()
	w.run(CancelFailover, "alpha", Params{})
	n := 0
	for _, c := range w.calls() {
		if c.Method != "RemoveDisk" {
			continue
		}
		n++
		if !strings.HasPrefix(c.Path, w.diskDir+"/") {
			t.Errorf("disk removed as %s, outside this server's disk directory %s", c.Path, w.diskDir)
		}
	}
	if n == 0 {
		t.Fatal("the cancel removed no disk")
	}
}
