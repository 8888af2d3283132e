package demo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
)

// CacheDir keeps the demo's built disk images between runs.
const CacheDir = "/var/cache/haven-demo"

// imageVersion changes when the way images are built changes.
const imageVersion = "3"

// Images are the template disks of the demo's two machines; each run
// copies them (reflink) onto its own filesystem.
type Images struct {
	Web, DBRoot, DBData string
}

// postgresBin finds Debian's newest PostgreSQL server.
func postgresBin() (string, error) {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(m) == 0 {
		return "", fmt.Errorf("PostgreSQL is not installed: run `apt-get install postgresql` (the database machine runs the host's PostgreSQL binaries)")
	}
	return m[len(m)-1], nil
}

func srcDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// BuildImages returns the cached images, building them first if the guest
// sources, the PostgreSQL version or the Go version changed.
func BuildImages(say func(string, ...any)) (Images, error) {
	pg, err := postgresBin()
	if err != nil {
		return Images{}, err
	}
	for _, tool := range []string{"go", "mkfs.ext4", "ldd", "cp"} {
		if _, err := exec.LookPath(tool); err != nil {
			return Images{}, fmt.Errorf("%s not found: the demo builds its images with it (apt-get install golang e2fsprogs coreutils libc-bin)", tool)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		return Images{}, fmt.Errorf("busybox not found: apt-get install busybox-static")
	}
	key, err := imageKey(pg)
	if err != nil {
		return Images{}, err
	}
	dir := filepath.Join(CacheDir, key)
	imgs := Images{Web: filepath.Join(dir, "web.img"), DBRoot: filepath.Join(dir, "db-root.img"), DBData: filepath.Join(dir, "db-data.img")}
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		say("   images cached in %s", dir)
		return imgs, nil
	}
	say("   building the machines' disk images once into %s (about 4 s with a warm Go build cache, 30 s cold)", dir)
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return Images{}, err
	}
	defer os.RemoveAll(tmp)
	if err := buildAll(tmp, pg); err != nil {
		return Images{}, err
	}
	os.WriteFile(filepath.Join(tmp, "done"), nil, 0o644)
	os.RemoveAll(dir)
	return imgs, os.Rename(tmp, dir)
}

func imageKey(pg string) (string, error) {
	h := sha256.New()
	h.Write([]byte(imageVersion + runtime.Version()))
	files, _ := filepath.Glob(filepath.Join(srcDir(), "guest", "*", "*.go"))
	files = append(files, filepath.Join(srcDir(), "images.go"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("the demo builds its guests from Haven's source tree (run it with `go run ./cmd/haven demo` from a checkout): %w", err)
		}
		h.Write(b)
	}
	v, err := exec.Command(pg, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", pg, err)
	}
	h.Write(v)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func buildAll(dir, pg string) error {
	for _, g := range []string{"shop", "dbinit"} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, g), "./guest/"+g)
		cmd.Dir = srcDir()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build guest %s: %v\n%s", g, err, out)
		}
	}
	web := filepath.Join(dir, "web-tree")
	if err := stageBase(web, filepath.Join(dir, "shop")); err != nil {
		return err
	}
	if err := mkfs(web, filepath.Join(dir, "web.img"), "64M"); err != nil {
		return err
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("user postgres: %v (apt-get install postgresql creates it)", err)
	}
	dbroot := filepath.Join(dir, "dbroot-tree")
	if err := stageDBRoot(dbroot, filepath.Join(dir, "dbinit"), pg, u); err != nil {
		return err
	}
	if err := mkfs(dbroot, filepath.Join(dir, "db-root.img"), "320M"); err != nil {
		return err
	}
	data := filepath.Join(dir, "dbdata-tree")
	if err := initdb(data, pg, u); err != nil {
		return err
	}
	return mkfs(data, filepath.Join(dir, "db-data.img"), "192M")
}

// stageBase is a minimal root: busybox with its applets and init.
func stageBase(tree, init string) error {
	for _, d := range []string{"bin", "sbin", "etc", "dev", "proc", "sys", "tmp", "run", "data", "root"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			return err
		}
	}
	if err := copyFile("/bin/busybox", filepath.Join(tree, "bin/busybox"), 0o755); err != nil {
		return err
	}
	if err := copyFile(init, filepath.Join(tree, "sbin/init"), 0o755); err != nil {
		return err
	}
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return err
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" && applet != "init" {
			os.Symlink("busybox", filepath.Join(tree, "bin", applet))
		}
	}
	return nil
}

// stageDBRoot adds the host's PostgreSQL server, the shared libraries it
// links, its share files and time zones, and the postgres user.
func stageDBRoot(tree, init, pg string, u *user.User) error {
	if err := stageBase(tree, init); err != nil {
		return err
	}
	ver := filepath.Base(filepath.Dir(filepath.Dir(pg)))
	copies := []string{pg, "/usr/share/postgresql/" + ver, "/usr/share/zoneinfo"}
	libs, _ := filepath.Glob("/usr/lib/postgresql/" + ver + "/lib/*.so")
	for _, l := range libs {
		if !strings.Contains(l, "llvmjit") {
			copies = append(copies, l)
		}
	}
	deps, err := sharedLibs(append([]string{pg}, libs...))
	if err != nil {
		return err
	}
	copies = append(copies, deps...)
	for _, c := range copies {
		if out, err := exec.Command("cp", "-rL", "--parents", c, tree).CombinedOutput(); err != nil {
			return fmt.Errorf("copy %s into the database image: %v %s", c, err, out)
		}
	}
	files := map[string]string{
		"etc/passwd":             fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\npostgres:x:%s:%s:PostgreSQL:/data:/bin/sh\n", u.Uid, u.Gid),
		"etc/group":              fmt.Sprintf("root:x:0:\npostgres:x:%s:\n", u.Gid),
		"etc/haven-postgres":     pg + "\n",
		"etc/haven-postgres-uid": u.Uid + "\n",
		"etc/haven-postgres-gid": u.Gid + "\n",
		"etc/haven-image":        "haven demo database machine\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(tree, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// sharedLibs lists the libraries (and loader) the binaries need, by ldd.
func sharedLibs(bins []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, b := range bins {
		o, err := exec.Command("ldd", b).Output()
		if err != nil {
			return nil, fmt.Errorf("ldd %s: %w", b, err)
		}
		for _, line := range strings.Split(string(o), "\n") {
			for _, f := range strings.Fields(line) {
				if strings.HasPrefix(f, "/") && !seen[f] {
					seen[f] = true
					out = append(out, f)
				}
			}
		}
	}
	return out, nil
}

// initdb creates the cluster the database machine serves: reachable from
// its network with trust (the demo's networks are private namespaces).
func initdb(tree, pg string, u *user.User) error {
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return err
	}
	cred, err := credential(u)
	if err != nil {
		return err
	}
	os.Chown(tree, int(cred.Uid), int(cred.Gid))
	pgdata := filepath.Join(tree, "pg")
	cmd := exec.Command(filepath.Join(filepath.Dir(pg), "initdb"), "-D", pgdata, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C")
	cmd.SysProcAttr = sysProcAttr(cred)
	cmd.Dir = "/"
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	conf := "\n# haven demo\nlisten_addresses = '*'\nunix_socket_directories = '/tmp'\ndynamic_shared_memory_type = mmap\n" +
		"shared_buffers = 16MB\nmax_connections = 40\njit = off\ntimezone = 'UTC'\nlog_timezone = 'UTC'\nmax_wal_size = 64MB\n"
	if err := appendFile(filepath.Join(pgdata, "postgresql.conf"), conf); err != nil {
		return err
	}
	return appendFile(filepath.Join(pgdata, "pg_hba.conf"), "host all all 0.0.0.0/0 trust\n")
}

func mkfs(tree, img, size string) error {
	out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", tree, img, size).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %v\n%s", img, err, out)
	}
	return nil
}

func appendFile(p, text string) error {
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
