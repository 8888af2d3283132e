// Package packaging builds Haven's Debian package: the haven binary (static,
// with the version stamped in by the linker, see internal/buildinfo), the
// systemd units in systemd/, the example configs in etc/ (conffiles under
// /etc/haven), the haven system user (sysusers.conf, made by postinst) and
// the maintainer scripts in scripts/. It uses nfpm as a library, so no make,
// dpkg-deb or debhelper is needed to build it; docs/packaging.md says what
// the package installs and why each unit runs as it does.
package packaging

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the "deb" packager
	"github.com/goreleaser/nfpm/v2/files"
)

// Options say what to build. Zero values are filled from the module's git
// checkout (Defaults).
type Options struct {
	Root    string    // module root (the directory holding go.mod)
	OutDir  string    // where the .deb goes
	Version string    // Debian version, starting with a digit: 1.2.3, 0.0.0~git20261206.92e242e
	Commit  string    // git commit stamped into the binary
	Date    time.Time // build date, also every file's mtime (reproducible builds)
	Arch    string    // Debian and GOARCH name: amd64, arm64
}

// ErrOptions is returned for options that cannot make a valid package.
var ErrOptions = errors.New("invalid packaging options")

// Build compiles haven and writes the .deb, returning its path.
func Build(ctx context.Context, o Options) (string, error) {
	o, err := Defaults(ctx, o)
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", "haven-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "haven")
	if err := buildBinary(ctx, o, bin); err != nil {
		return "", err
	}
	info, err := packageInfo(o, bin)
	if err != nil {
		return "", err
	}
	return writeDeb(o, info)
}

// Defaults fills the options' zero values: the module root from `go env
// GOMOD`, the commit and its date from git, a version derived from them.
func Defaults(ctx context.Context, o Options) (Options, error) {
	if o.Root == "" {
		gomod, err := output(ctx, "", "go", "env", "GOMOD")
		if err != nil || gomod == "" || gomod == os.DevNull {
			return o, fmt.Errorf("%w: not inside the haven module (go env GOMOD: %q %v)", ErrOptions, gomod, err)
		}
		o.Root = filepath.Dir(gomod)
	}
	if o.Commit == "" {
		c, err := output(ctx, o.Root, "git", "rev-parse", "HEAD")
		if err != nil {
			return o, fmt.Errorf("%w: give the commit: %v", ErrOptions, err)
		}
		o.Commit = c
	}
	if o.Date.IsZero() {
		d, err := output(ctx, o.Root, "git", "show", "-s", "--format=%ct", o.Commit)
		var sec int64
		if err == nil {
			_, err = fmt.Sscan(d, &sec)
		}
		if err != nil {
			return o, fmt.Errorf("%w: give the date: %v", ErrOptions, err)
		}
		o.Date = time.Unix(sec, 0).UTC()
	}
	if o.Version == "" {
		o.Version = fmt.Sprintf("0.0.0~git%s.%.7s", o.Date.Format("20060102"), o.Commit)
	}
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	if o.OutDir == "" {
		o.OutDir = "."
	}
	if o.Version[0] < '0' || o.Version[0] > '9' {
		return o, fmt.Errorf("%w: version %q: a Debian version starts with a digit", ErrOptions, o.Version)
	}
	return o, nil
}

// buildBinary builds a static binary (no cgo: SQLite is pure Go), so one
// package runs on any Debian release with systemd.
func buildBinary(ctx context.Context, o Options, dst string) error {
	const pkg = "github.com/haven-dr/haven/internal/buildinfo"
	ldflags := strings.Join([]string{"-s", "-w",
		"-X", pkg + ".version=" + o.Version,
		"-X", pkg + ".commit=" + o.Commit,
		"-X", pkg + ".date=" + o.Date.Format(time.RFC3339)}, " ")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", ldflags, "-o", dst, "./cmd/haven")
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.Arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}

func output(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

// Units lists the systemd units the package ships: every *.service in
// packaging/systemd, so a part that adds its unit there is packaged.
func Units(root string) ([]string, error) {
	units, err := filepath.Glob(filepath.Join(root, "packaging", "systemd", "*.service"))
	sort.Strings(units)
	if err == nil && len(units) == 0 {
		err = fmt.Errorf("%w: no units in %s/packaging/systemd", ErrOptions, root)
	}
	return units, err
}

// Configs lists the example configs installed as /etc/haven conffiles.
func Configs(root string) ([]string, error) {
	cfgs, err := filepath.Glob(filepath.Join(root, "packaging", "etc", "*.yaml"))
	sort.Strings(cfgs)
	return cfgs, err
}

// configMode keeps the configs of root's services (server.yaml may hold a
// PostgreSQL URL with its password) from other users; haven dns runs as
// the haven user and must read its own, which holds no secret (its API
// token is a file in its state directory).
func configMode(path string) os.FileMode {
	if filepath.Base(path) == "dns.yaml" {
		return 0o644
	}
	return 0o640
}

func packageInfo(o Options, bin string) (*nfpm.Info, error) {
	p := func(rel string) string { return filepath.Join(o.Root, "packaging", rel) }
	contents := files.Contents{
		{Source: bin, Destination: "/usr/bin/haven", FileInfo: &files.ContentFileInfo{Mode: 0o755}},
		// Shipped so it exists 0755 before anything else makes it: created
		// by `haven vault init` of a vault below it, it would be 0700 and
		// the haven user could not reach its own state directory in it.
		{Destination: "/var/lib/haven", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o755}},
		{Source: p("sysusers.conf"), Destination: "/usr/lib/sysusers.d/haven.conf", FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		{Source: filepath.Join(o.Root, "LICENSE"), Destination: "/usr/share/doc/haven/copyright", FileInfo: &files.ContentFileInfo{Mode: 0o644}},
	}
	units, err := Units(o.Root)
	if err != nil {
		return nil, err
	}
	for _, u := range units {
		contents = append(contents, &files.Content{Source: u,
			Destination: "/usr/lib/systemd/system/" + filepath.Base(u), FileInfo: &files.ContentFileInfo{Mode: 0o644}})
	}
	cfgs, err := Configs(o.Root)
	if err != nil {
		return nil, err
	}
	for _, c := range cfgs {
		contents = append(contents, &files.Content{Source: c, Type: files.TypeConfigNoReplace,
			Destination: "/etc/haven/" + filepath.Base(c), FileInfo: &files.ContentFileInfo{Mode: configMode(c)}})
	}
	info := &nfpm.Info{
		Name: "haven", Arch: o.Arch, Platform: "linux",
		Version: o.Version, VersionSchema: "none",
		Section: "admin", Priority: "optional",
		Maintainer:  "Haven developers <haven@haven-dr.invalid>",
		Homepage:    "https://github.com/haven-dr/haven",
		License:     "Apache-2.0",
		Description: "Self-hosted site recovery\n Replicates machines into an encrypted vault, fails them over to a\n recovery site, runs drills, and moves DNS names with them.",
		MTime:       o.Date,
		Overridables: nfpm.Overridables{
			Contents: contents,
			// What the recovery site shells out to; the agent and dns alone need none.
			Recommends: []string{"iproute2", "util-linux", "fdisk", "qemu-utils"},
			Suggests:   []string{"qemu-system-x86", "postgresql"},
			Scripts: nfpm.Scripts{
				PostInstall: p("scripts/postinst"),
				PreRemove:   p("scripts/prerm"),
				PostRemove:  p("scripts/postrm"),
			},
		},
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOptions, err)
	}
	return info, nil
}

func writeDeb(o Options, info *nfpm.Info) (string, error) {
	pkgr, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", err
	}
	dst := filepath.Join(o.OutDir, pkgr.ConventionalFileName(info))
	f, err := os.Create(dst)
	if err != nil {
		return "", err
	}
	if err := pkgr.Package(info, f); err != nil {
		f.Close()
		os.Remove(dst)
		return "", fmt.Errorf("write %s: %w", dst, err)
	}
	return dst, f.Close()
}
