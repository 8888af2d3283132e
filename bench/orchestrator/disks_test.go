package orchbench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
)

// splitPrep times, apart from any job, the two parts of preparing m's
// data disk from its standby: the reflink clone, and the vault's compare
// of the clone against the point (cold cache), which host.PrepareDisk runs
// even when the standby already holds that very point.
func (r *rig) splitPrep(b *testing.B, m string) (clone, verify time.Duration) {
	src := filepath.Join(r.xfs, "server", "host", "standby", m, "data.img")
	dst := filepath.Join(r.xfs, "hvsplit-"+m+".img")
	defer os.Remove(dst)
	testenv.Evict(b, filepath.Dir(src), filepath.Join(r.dir, "vault"))
	t0 := time.Now()
	if err := reflink(src, dst); err != nil {
		b.Fatal(err)
	}
	clone = time.Since(t0)
	t0 = time.Now()
	_, err := r.vault.Restore(context.Background(), vault.RestoreOptions{Machine: m,
		Point: r.host.StandbyPoint(m, "data"), Disk: "data", Target: dst, DryRun: true})
	if err != nil {
		b.Fatal(err)
	}
	return clone, time.Since(t0)
}

func reflink(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err != nil {
		out.Close()
		return fmt.Errorf("FICLONE %s: %w", src, err)
	}
	return out.Close()
}
