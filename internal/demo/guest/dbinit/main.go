// Command dbinit is PID 1 of the demo's database machine (the seed's SQL
// Server VM): it mounts what PostgreSQL needs, starts the server from the
// machine's own disks (binaries on the root disk, the cluster on the data
// disk at /data/pg) as the postgres user, turns the machine's stop signal
// into a fast shutdown, and reaps orphans.
package main

import (
	"log"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	for _, m := range []struct{ fs, dir string }{{"proc", "/proc"}, {"tmpfs", "/tmp"}, {"tmpfs", "/run"}} {
		os.MkdirAll(m.dir, 0o755)
		if err := syscall.Mount(m.fs, m.dir, m.fs, 0, ""); err != nil {
			log.Printf("dbinit: mount %s: %v", m.dir, err)
		}
	}
	os.Chmod("/tmp", 0o1777)
	bin := strings.TrimSpace(read("/etc/haven-postgres"))
	uid, _ := strconv.Atoi(strings.TrimSpace(read("/etc/haven-postgres-uid")))
	gid, _ := strconv.Atoi(strings.TrimSpace(read("/etc/haven-postgres-gid")))
	os.MkdirAll("/run/postgresql", 0o755)
	os.Chown("/run/postgresql", uid, gid)
	cmd := exec.Command(bin, "-D", "/data/pg")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "TZ=UTC"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	if err := cmd.Start(); err != nil {
		log.Fatalf("dbinit: start postgres: %v", err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		cmd.Process.Signal(syscall.SIGINT) // fast shutdown: clients are cut, the data is checkpointed
	}()
	pg := cmd.Process.Pid
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err != nil {
			os.Exit(1)
		}
		if pid == pg {
			log.Printf("dbinit: postgres exited: %v", ws)
			syscall.Sync()
			os.Exit(ws.ExitStatus())
		}
	}
}

func read(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		log.Fatalf("dbinit: %v", err)
	}
	return string(b)
}
