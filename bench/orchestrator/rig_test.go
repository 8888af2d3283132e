package orchbench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	demorig "github.com/haven-dr/haven/internal/demo/rig"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
)

// rig is one recovery site ready to fail the shop plan over: a vault
// holding one crash-consistent point of db and web, an in-process
// orchestrator whose host keeps its disks and standby images on a reflink
// XFS, and a real `haven dns` in the customers' namespace (the demo's
// rig's internet, without a primary site).
type rig struct {
	dir   string
	xfs   string
	inet  string
	world *demorig.Rig
	vault *vault.Vault
	host  *host.Local
	orch  *orchestrator.Orchestrator
}

var machines = []string{"db", "web"}

// newRig builds everything outside the timer; b.Cleanup removes it in
// reverse order (jobs, machines, site namespace, dns, edge namespace,
// vault, the XFS and its loop device) even when the benchmark fails.
func newRig(b *testing.B, gib int) *rig {
	testenv.RequireRoot(b)
	for _, p := range []string{"mkfs.xfs", "mkfs.ext4", "losetup", "ip"} {
		testenv.LookPath(b, p)
	}
	bin := havenBinary(b)
	ctx := context.Background()
	r := &rig{dir: testenv.Dir(b)}
	// Standby and failover copies of two disks, each ~10 % allocated,
	// plus the root images: (2+gib) GiB is several times what is used.
	r.xfs = testenv.XFS(b, int64(2+gib)<<10)
	r.vault = newVault(b, filepath.Join(r.dir, "vault"))
	root := machinetest.Image(b)
	for _, m := range machines {
		r.protect(b, m, root, gib)
	}
	r.world = demorig.New(demorig.Options{Dir: r.dir, Bin: bin, Env: os.Environ(), Cleanup: demorig.OnTestEnd(b)})
	if err := r.world.Edge(); err != nil {
		b.Fatal(err)
	}
	r.inet = r.world.Inet
	// The primary endpoint is unreachable (the primary site is gone); the
	// recovery endpoint is the recovered web machine.
	if err := r.world.StartDNS(ctx, "127.0.0.1:53"); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(r.xfs, "server"), 0o700); err != nil {
		b.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(r.xfs, "server", "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if r.host, err = host.NewLocal(filepath.Join(r.xfs, "server", "host"), r.vault, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.removeSites)
	r.orch = orchestrator.New(orchestrator.Options{Store: st, Host: r.host, Vault: r.vault,
		Traffic: orchestrator.DNSTraffic, DiskDir: filepath.Join(r.xfs, "server", "disks"), Edge: r.inet,
		StandbyEnabled: true, Logger: slog.New(slog.DiscardHandler)})
	if err := r.orch.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.orch.Close)
	if _, _, err := r.orch.Apply(ctx, []byte(r.protection())); err != nil {
		b.Fatal(err)
	}
	b.Logf("recovery host %s, edge %s, state on %s", r.host.ID(), r.inet, r.xfs)
	return r
}

// removeSites stops recovered machines and deletes the site namespaces a
// failed iteration may have left (a clean run left none).
func (r *rig) removeSites() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r.host.Close(ctx)
	for _, s := range []string{orchestrator.SiteRecovery, orchestrator.SiteTest} {
		r.host.RemoveSite(ctx, s)
	}
}

func newVault(b *testing.B, path string) *vault.Vault {
	ctx := context.Background()
	be, err := blobopen.Open(ctx, "file://"+path, blob.DefaultLimits())
	if err != nil {
		b.Fatal(err)
	}
	v, err := vault.Init(ctx, be, "correct horse", vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		be.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	return v
}

// protect makes machine m's disks at the "primary" (a copy of the guest
// root image and a data disk of gib GiB, 10 % of it random files), takes
// one crash-consistent point of both, and deletes the primary copies: the
// primary is gone, only the vault is left.
func (r *rig) protect(b *testing.B, m, rootImage string, gib int) {
	root := filepath.Join(r.dir, m+"-root.img")
	if err := copyFile(rootImage, root); err != nil {
		b.Fatal(err)
	}
	data := filepath.Join(r.dir, m+"-data.img")
	testenv.FilledExt4(b, data, int64(gib)<<10, int64(gib)<<10/10)
	defer os.Remove(root)
	defer os.Remove(data)
	_, _, err := r.vault.Snapshot(context.Background(), vault.SnapshotOptions{Machine: m,
		Disks:       []vault.DiskSource{{Name: "root", Path: root}, {Name: "data", Path: data}},
		Consistency: vault.CrashConsistent, Provider: "none"})
	if err != nil {
		b.Fatalf("snapshot %s: %v", m, err)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (r *rig) protection() string {
	return demorig.Shop{DBPort: 80, DBData: true, WebData: true, Timeout: "2m",
		DNSToken: r.world.DNSToken(), Edge: r.inet, Resolve: "127.0.0.1:53"}.YAML()
}

var build struct {
	sync.Once
	dir, bin string
	err      error
}

// havenBinary builds cmd/haven once per run (for `haven dns`).
func havenBinary(b *testing.B) string {
	build.Do(func() {
		if build.dir, build.err = os.MkdirTemp("", "hvbench"); build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "haven")
		out, err := exec.Command("go", "build", "-o", build.bin, "github.com/haven-dr/haven/cmd/haven").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("build haven: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		b.Fatal(build.err)
	}
	return build.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}
