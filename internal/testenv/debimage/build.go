package debimage

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// build makes the image at out (which must not exist) using work as
// scratch space, and returns the kernel version it holds.
func build(ctx context.Context, work, out string, sources []string) (string, error) {
	root := filepath.Join(work, "root")
	start := time.Now()
	if err := debootstrap(ctx, work, root, sources); err != nil {
		return "", err
	}
	slog.Info("debimage: root filesystem installed", "took", time.Since(start).Round(time.Second))
	kver, err := finishRoot(root)
	if err != nil {
		return "", err
	}
	if err := makeDisk(ctx, work, root, out, kver); err != nil {
		return "", err
	}
	return kver, nil
}

// debootstrap runs mmdebstrap into root, applying the recipe's overlay and
// customize script in its customize hook.
func debootstrap(ctx context.Context, work, root string, sources []string) error {
	if err := os.CopyFS(filepath.Join(work, "recipe"), recipeFSRoot()); err != nil {
		return fmt.Errorf("debimage: unpack recipe: %w", err)
	}
	args := []string{"--mode=root", "--variant=minbase",
		"--include=" + strings.Join(packages, ","),
		"--customize-hook=sh " + filepath.Join(work, "recipe", "customize.sh") +
			` "$1" ` + filepath.Join(work, "recipe", "files"),
	}
	for _, o := range dpkgOptions() {
		args = append(args, "--dpkgopt="+o)
	}
	args = append(args, Suite, root)
	args = append(args, sources...)
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	// mmdebstrap mounts /proc, /sys and /dev in the chroot: let it unmount
	// them on cancel rather than die holding them.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8")
	if err := runCmd(cmd); err != nil {
		return err
	}
	return nil
}

func recipeFSRoot() fs.FS {
	sub, err := fs.Sub(recipeFS, "recipe")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	return sub
}

// finishRoot writes what depends on the installed kernel or must differ
// from what mmdebstrap leaves: bootloader configuration, an uninitialized
// machine identity, no resolver of the build host.
func finishRoot(root string) (string, error) {
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return "", fmt.Errorf("debimage: want one kernel in /boot, found %d", len(kernels))
	}
	kver := strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
	files := map[string]string{
		// Empty, not "uninitialized": every boot makes up a machine-id
		// without first-boot presets re-enabling units.
		"etc/machine-id":              "",
		"etc/resolv.conf":             "",
		"etc/fstab":                   "# root is mounted read-write by the kernel (rw on its command line)\n",
		"boot/extlinux/extlinux.conf": extlinuxConf(kver),
	}
	os.Remove(filepath.Join(root, "var/lib/dbus/machine-id"))
	for name, content := range files {
		p := filepath.Join(root, name)
		os.Remove(p) // resolv.conf may be a symlink to the host's
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return "", fmt.Errorf("debimage: %w", err)
		}
	}
	return kver, nil
}

func extlinuxConf(kver string) string {
	return fmt.Sprintf(`SERIAL 0 115200
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  LINUX /boot/vmlinuz-%[1]s
  INITRD /boot/initrd.img-%[1]s
  APPEND %[2]s
`, kver, cmdline())
}

func systemdBootFiles(kver string) map[string]string {
	return map[string]string{
		"loader/loader.conf": "default debian.conf\ntimeout 0\nconsole-mode keep\n",
		"loader/entries/debian.conf": fmt.Sprintf(
			"title Debian %s (haven test image)\nlinux /vmlinuz-%s\ninitrd /initrd.img-%s\noptions %s\n",
			Suite, kver, kver, cmdline()),
	}
}

// runCmd runs cmd and puts its output in the error when it fails.
func runCmd(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := string(out)
		if len(tail) > 4000 {
			tail = "..." + tail[len(tail)-4000:]
		}
		return fmt.Errorf("debimage: %s: %w\n%s", strings.Join(cmd.Args, " "), err, tail)
	}
	return nil
}

func run(ctx context.Context, prog string, args ...string) error {
	return runCmd(exec.CommandContext(ctx, prog, args...))
}
