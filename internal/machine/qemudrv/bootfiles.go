package qemudrv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Boot files come from Debian only: the linux-image-amd64 kernel fetched
// with apt-get download and unpacked with dpkg -x, and an initramfs made
// of busybox-static, a few of that kernel's modules and initScript.

// guestModules are loaded by the initramfs, with their dependencies first.
var guestModules = []string{
	"crc32c_generic", "ext4", "virtio_pci", "virtio_blk", "virtio_net", "button", "evdev",
}

// BootFiles are a kernel and an initramfs for direct kernel boot.
type BootFiles struct {
	Kernel, Initrd string
}

// PrepareBoot returns cached boot files under cacheDir, building them the
// first time (needs apt-get, dpkg, depmod, cpio and busybox-static).
func PrepareBoot(cacheDir string) (BootFiles, error) {
	dir := filepath.Join(cacheDir, "qemu-boot")
	bf := BootFiles{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.cpio")}
	if _, err := os.Stat(bf.Initrd); err == nil {
		return bf, nil
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return bf, err
	}
	if err := buildBoot(tmp); err != nil {
		return bf, fmt.Errorf("qemu: prepare boot files: %w", err)
	}
	os.RemoveAll(dir)
	return bf, os.Rename(tmp, dir)
}

func buildBoot(dir string) error {
	pkg, err := kernelPackage()
	if err != nil {
		return err
	}
	x := filepath.Join(dir, "x")
	script := fmt.Sprintf("cd %q && apt-get download -q %s && dpkg -x %s_*.deb x && rm -f *.deb", dir, pkg, pkg)
	if err := sh(script); err != nil {
		return err
	}
	kvers, _ := filepath.Glob(filepath.Join(x, "lib/modules/*"))
	if len(kvers) != 1 {
		return fmt.Errorf("want one kernel in %s, found %d", pkg, len(kvers))
	}
	if err := sh(fmt.Sprintf("depmod -b %q %s", x, filepath.Base(kvers[0]))); err != nil {
		return err
	}
	kernels, _ := filepath.Glob(filepath.Join(x, "boot/vmlinuz-*"))
	if len(kernels) != 1 {
		return fmt.Errorf("no vmlinuz in %s", pkg)
	}
	if err := os.Rename(kernels[0], filepath.Join(dir, "vmlinuz")); err != nil {
		return err
	}
	if err := buildInitrd(dir, kvers[0]); err != nil {
		return err
	}
	return os.RemoveAll(x)
}

// kernelPackage resolves the linux-image-amd64 metapackage to the versioned
// package it depends on (apt-get download fetches no dependencies).
func kernelPackage() (string, error) {
	out, err := exec.Command("apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends linux-image-amd64: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		dep, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: ")
		if ok && strings.HasPrefix(dep, "linux-image-") {
			return dep, nil
		}
	}
	return "", fmt.Errorf("linux-image-amd64 has no linux-image dependency (run apt-get update)")
}

func buildInitrd(dir, moddir string) error {
	root := filepath.Join(dir, "initrd")
	for _, d := range []string{"bin", "proc", "sys", "dev", "newroot", "lib/modules"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := copyFile("/bin/busybox", filepath.Join(root, "bin/busybox"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "init"), []byte(initScript), 0o755); err != nil {
		return err
	}
	order, err := moduleOrder(moddir, guestModules)
	if err != nil {
		return err
	}
	for _, m := range order {
		if err := copyFile(filepath.Join(moddir, m), filepath.Join(root, "lib/modules", m), 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "modules.order"), []byte(strings.Join(order, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	out := filepath.Join(dir, "initrd.cpio")
	return sh(fmt.Sprintf("cd %q && find . | cpio -o -H newc --quiet > %q && cd / && rm -rf %q", root, out, root))
}

// moduleOrder returns the module files (relative to moddir) for names and
// their dependencies, each after everything it needs, from modules.dep.
func moduleOrder(moddir string, names []string) ([]string, error) {
	deps, byName, err := readModulesDep(filepath.Join(moddir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	var order []string
	seen := map[string]bool{}
	var visit func(path string)
	visit = func(path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		for _, d := range deps[path] {
			visit(d)
		}
		order = append(order, path)
	}
	for _, n := range names {
		if path, ok := byName[n]; ok { // absent: built into this kernel
			visit(path)
		}
	}
	return order, nil
}

func readModulesDep(path string) (map[string][]string, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	deps, byName := map[string][]string{}, map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		name := strings.TrimSuffix(filepath.Base(mod), ".ko")
		byName[strings.ReplaceAll(name, "-", "_")] = mod
	}
	return deps, byName, sc.Err()
}

func sh(script string) error {
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", script, err, out)
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}
