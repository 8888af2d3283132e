package debimage

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// builderVersion changes whenever the Go build steps change in a way the
// recipe files do not show (layout, mkfs options), so caches rebuild.
const builderVersion = "debimage/2"

// Suite is the Debian release the image holds.
const Suite = "bookworm"

// packages are installed on top of mmdebstrap's minbase variant, without
// Recommends.
var packages = []string{
	"systemd-sysv", "udev", "dbus", "kmod", "procps", "iproute2", "netbase",
	"linux-image-amd64", "systemd-boot-efi",
	"postgresql", "cloud-init", "qemu-guest-agent",
}

// dpkgExcludes keep bulk nobody reads at boot out of the image: smaller
// builds, copies and restores. libLLVM/libz3 only serve PostgreSQL's JIT,
// which the image turns off.
var dpkgExcludes = []string{
	"/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*",
	"/usr/share/locale/*", "/usr/share/lintian/*",
	"/usr/lib/x86_64-linux-gnu/libLLVM-*", "/usr/lib/x86_64-linux-gnu/libz3.*",
	"/usr/lib/postgresql/15/lib/llvmjit*", "/usr/lib/postgresql/15/lib/bitcode/*",
}

// moduleExcludes are kernel module trees no QEMU guest or test needs.
var moduleExcludes = []string{
	"sound", "drivers/gpu", "drivers/media", "drivers/net/wireless",
	"drivers/infiniband", "drivers/staging", "drivers/bluetooth",
	"net/bluetooth", "drivers/iio", "drivers/isdn", "drivers/net/ethernet/mellanox",
}

// dpkgOptions is the --dpkgopt list for mmdebstrap.
func dpkgOptions() []string {
	var out []string
	for _, p := range dpkgExcludes {
		out = append(out, "path-exclude="+p)
	}
	for _, m := range moduleExcludes {
		// bookworm's packages still ship /lib; dpkg matches the path it
		// unpacks, so name both spellings of merged /usr.
		out = append(out, "path-exclude=/lib/modules/*/kernel/"+m+"/*",
			"path-exclude=/usr/lib/modules/*/kernel/"+m+"/*")
	}
	return out
}

//go:embed recipe
var recipeFS embed.FS

// Fixed identities: the kernel command line names the root by PARTUUID,
// so it must be known before the kernel is installed. Every copy shares
// them, like clones of one cloud image.
const (
	diskGUID     = "6d1f0e1c-5a3b-4f4e-9a51-1a2b3c4d5e6f"
	espPartUUID  = "c12a7328-0001-4c68-9a6e-68617665e001"
	rootPartUUID = "4f68bce3-0002-4c68-9a6e-68617665e002"
	rootFSUUID   = "8e0a1f3d-0003-4c68-9a6e-68617665e003"
	espVolumeID  = "48415645" // "HAVE"
)

// Layout: GPT, 1 MiB aligned; the last MiB leaves room for the backup GPT.
const (
	mib        = 1 << 20
	diskSize   = 2048 * mib
	espStart   = 1 * mib
	espSize    = 256 * mib
	rootStart  = espStart + espSize
	rootSize   = diskSize - rootStart - mib
	espPart    = 1
	rootPart   = 2
	kernelArgs = "rw console=ttyS0,115200 net.ifnames=0"
)

// cmdline is the kernel command line both bootloaders pass.
func cmdline() string { return "root=PARTUUID=" + rootPartUUID + " " + kernelArgs }

// recipeKey hashes everything that decides the image's content: a change to
// any of it names a new cache entry, so a stale image is never used.
func recipeKey(sources []string) (string, error) {
	h := sha256.New()
	add := func(parts ...string) {
		for _, p := range parts {
			h.Write([]byte(p))
			h.Write([]byte{0})
		}
	}
	add(builderVersion, Suite, cmdline(), diskGUID, espPartUUID, rootPartUUID, rootFSUUID)
	add(packages...)
	add(dpkgOptions()...)
	var names []string
	err := fs.WalkDir(recipeFS, "recipe", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := recipeFS.ReadFile(n)
		if err != nil {
			return "", err
		}
		add(n, string(b))
	}
	for _, s := range sources {
		b, err := os.ReadFile(s)
		if err != nil {
			return "", err
		}
		add(s, string(b))
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// aptSources are the host's Debian sources files, handed to mmdebstrap as
// its mirrors: the image comes from the mirror this machine (and CI) uses.
func aptSources() []string {
	var out []string
	cands := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"*.sources", "*.list"} {
		m, _ := filepath.Glob(filepath.Join("/etc/apt/sources.list.d", pat))
		cands = append(cands, m...)
	}
	for _, c := range cands {
		b, err := os.ReadFile(c)
		if err != nil {
			continue
		}
		s := string(b)
		if strings.Contains(s, "/debian") && strings.Contains(s, Suite) && hasActiveLine(s) {
			out = append(out, c)
		}
	}
	return out
}

func hasActiveLine(s string) bool {
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "deb ") || strings.HasPrefix(l, "Types:") {
			return true
		}
	}
	return false
}
