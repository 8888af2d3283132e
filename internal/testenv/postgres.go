package testenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Postgres is a PostgreSQL server (Debian's postgresql package) run by a
// test as the postgres user, listening only on a unix socket in a private
// directory (no TCP at all).
type Postgres struct {
	Bin     string // directory of postgres, initdb, ...
	DataDir string
	Socket  string // directory of the unix socket
	Log     string
	// NetNS and Listen: the server runs in that network namespace and
	// takes TCP connections on Listen too (from the namespace's own
	// subnets: pg_hba's samenet).
	NetNS, Listen string
	cred          *syscall.Credential
	cmd           *exec.Cmd
	exited        chan struct{}
}

// PostgresBin returns the directory of the newest installed PostgreSQL.
func PostgresBin(t testing.TB) string {
	t.Helper()
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(m) == 0 {
		Missing(t, "PostgreSQL server (Debian package postgresql) not installed")
	}
	return filepath.Dir(m[len(m)-1])
}

// NewPostgres prepares a server for dataDir; socketDir must be empty.
func NewPostgres(t testing.TB, dataDir, socketDir string) *Postgres {
	t.Helper()
	RequireRoot(t)
	u, err := user.Lookup("postgres")
	if err != nil {
		Missing(t, "user postgres: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	os.Chown(socketDir, uid, gid)
	return &Postgres{Bin: PostgresBin(t), DataDir: dataDir, Socket: socketDir,
		Log: filepath.Join(socketDir, "postgres.log"), cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
}

// Initdb creates the cluster (its parent must be writable by postgres).
// It lets initdb fsync the new cluster: files such as PG_VERSION are never
// written again, so with --no-sync they may sit in the page cache for the
// first 30 s and a crash-consistent copy taken then is not a cluster at all
// (a real crash would lose it too).
func (p *Postgres) Initdb(t testing.TB) {
	t.Helper()
	if out, err := p.command("initdb", "-D", p.DataDir, "-A", "trust", "-U", "postgres").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
}

func (p *Postgres) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.Bin, prog), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if p.NetNS != "" && prog == "postgres" {
		// Entering a namespace takes root: nsenter enters, then drops to postgres.
		cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + p.NetNS,
			"-S", fmt.Sprint(p.cred.Uid), "-G", fmt.Sprint(p.cred.Gid), filepath.Join(p.Bin, prog)}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	cmd.Dir = "/"
	return cmd
}

// Start runs the server and waits until it accepts connections; it is
// stopped (immediate shutdown) in t.Cleanup.
func (p *Postgres) Start(t testing.TB, settings ...string) {
	t.Helper()
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-D", p.DataDir, "-k", p.Socket, "-c", "listen_addresses=" + p.Listen, "-p", "5432"}
	if p.Listen != "" {
		hba, err := os.OpenFile(filepath.Join(p.DataDir, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = hba.WriteString("host all all samenet trust\n")
		hba.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range settings {
		args = append(args, "-c", s)
	}
	p.cmd = p.command("postgres", args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	p.exited = make(chan struct{})
	go func() { p.cmd.Wait(); logf.Close(); close(p.exited) }()
	t.Cleanup(p.Stop)
	deadline := time.Now().Add(serviceStartTimeout)
	for time.Now().Before(deadline) {
		if _, err := p.Query(context.Background(), "SELECT 1"); err == nil {
			return
		}
		select {
		case <-p.exited:
			t.Fatalf("postgres exited:\n%s", TailFile(p.Log))
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("postgres not ready after %v:\n%s", serviceStartTimeout, TailFile(p.Log))
}

// Stop shuts the server down at once (SIGQUIT, like a crash for the data).
func (p *Postgres) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGQUIT)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
	p.cmd = nil
}

// Query runs SQL with psql and returns the unaligned, tuples-only output.
func (p *Postgres) Query(ctx context.Context, sql string) (string, error) {
	cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", p.Socket, "-U", "postgres", "-d", "postgres", "-c", sql)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql %q: %v: %s", sql, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// PsqlArgs are the arguments that connect psql to this server.
func (p *Postgres) PsqlArgs() []string {
	return []string{"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", p.Socket, "-U", "postgres", "-d", "postgres"}
}

// LogText returns the server log.
func (p *Postgres) LogText() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// StartPostgres runs a throwaway server in private directories, for tests
// that need a database rather than a data directory to copy.
func StartPostgres(t testing.TB, settings ...string) *Postgres {
	t.Helper()
	return StartPostgresIn(t, "", "", settings...)
}

// StartPostgresIn is StartPostgres in network namespace ns, taking TCP
// connections on listen (an address of ns) as well as the unix socket.
func StartPostgresIn(t testing.TB, ns, listen string, settings ...string) *Postgres {
	t.Helper()
	RequireRoot(t)
	PostgresBin(t)
	parent := Dir(t)
	if out, err := exec.Command("chown", "postgres:postgres", parent).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v %s", parent, err, out)
	}
	p := NewPostgres(t, filepath.Join(parent, "data"), Dir(t))
	p.NetNS, p.Listen = ns, listen
	p.Initdb(t)
	p.Start(t, settings...)
	return p
}

// TCPURL is a postgres:// URL for database db over TCP to Listen.
func (p *Postgres) TCPURL(db string) string {
	return "postgres://postgres@" + net.JoinHostPort(p.Listen, "5432") + "/" + db + "?sslmode=disable"
}

// URL is a postgres:// URL for database db over the unix socket.
func (p *Postgres) URL(db string) string {
	return "postgres://postgres@/" + db + "?sslmode=disable&host=" + url.QueryEscape(p.Socket)
}
