package hostsbench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/testenv/hostrig"
)

// newRig starts one `haven host` per name (internal/testenv/hostrig:
// each a process in a namespace of its own with its own state directory,
// on a veth underlay, reached from a control namespace), each reading
// the vault at vaultOf[name]. Everything lives on one reflink XFS, so
// standby images are cloned, not copied, as on a production host.
func newRig(b *testing.B, bin, base string, vaultOf map[string]string, pw string, names ...string) *hostrig.Rig {
	return hostrig.New(b, hostrig.Options{Bin: bin, Env: env(), Base: base, Net: [3]byte{10, 78, 0},
		Sites: []string{orchestrator.SiteRecovery, orchestrator.SiteTest},
		Config: func(name string) string {
			return fmt.Sprintf("vault: file://%s\npassword_file: %s\n", vaultOf[name], pw)
		}}, names...)
}

func env() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "HAVEN_TEST_KDF=fast"}
}

// protect makes machine m's disks as the primary would have them (the
// guest root image and an ext4 data disk of mib MiB, half of it random
// files), takes one crash-consistent point of both with `haven
// snapshot` (the vault write path the agent uses), and deletes the
// primary copies: only the vault is left.
func protect(b *testing.B, bin, dir string, vaultFlags []string, m string, mib int) {
	root := filepath.Join(dir, m+"-root.img")
	data := filepath.Join(dir, m+"-data.img")
	defer os.Remove(root)
	defer os.Remove(data)
	if out, err := exec.Command("cp", machinetest.Image(b), root).CombinedOutput(); err != nil {
		b.Fatalf("copy the guest image: %v\n%s", err, out)
	}
	testenv.FilledExt4(b, data, int64(mib), int64(mib)/2)
	cmd := exec.Command(bin, append([]string{"snapshot", "--machine", m, "--disk", "root=" + root, "--disk", "data=" + data}, vaultFlags...)...)
	cmd.Env = env()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("snapshot %s: %v\n%s", m, err, out)
	}
}
