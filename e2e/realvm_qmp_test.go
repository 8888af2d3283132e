package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/qemudrv"
	"github.com/haven-dr/haven/internal/qmp"
	"github.com/haven-dr/haven/internal/vnet"
)

// monitor runs one QMP command on a qemu machine. QEMU serves one client
// per monitor socket at a time, so this waits while the agent is in the
// middle of a cycle on it.
func (l *rvLab) monitor(spec machine.Spec, cmd string, args any) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := qmp.Dial(ctx, l.sock(spec, "qmp.sock"))
	if err != nil {
		l.t.Fatalf("QMP of %s: %v", spec.Name, err)
	}
	defer c.Close()
	if err := c.Execute(ctx, cmd, args, nil); err != nil {
		l.t.Fatalf("QMP %s: %v", cmd, err)
	}
}

// guestExec runs a program in a qemu machine through qemu-guest-agent and
// returns its output; a non-zero exit fails the test.
func (l *rvLab) guestExec(spec machine.Spec, path string, args ...string) string {
	l.t.Helper()
	return l.guestExecWithin(2*time.Minute, spec, path, args...)
}

// guestExecWithin is guestExec for a program that may run up to d.
func (l *rvLab) guestExecWithin(d time.Duration, spec machine.Spec, path string, args ...string) string {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var c *qmp.Client
	var err error
	for c == nil && ctx.Err() == nil { // the guest agent starts late in boot
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		c, err = qmp.DialGuest(dctx, l.sock(spec, qemudrv.GuestAgentSocket))
		dcancel()
	}
	if c == nil {
		l.t.Fatalf("guest agent of %s: %v", spec.Name, err)
	}
	defer c.Close()
	var started struct {
		PID int `json:"pid"`
	}
	if err := c.Execute(ctx, "guest-exec", map[string]any{"path": path, "arg": args, "capture-output": true}, &started); err != nil {
		l.t.Fatal(err)
	}
	for {
		var st struct {
			Exited   bool   `json:"exited"`
			ExitCode int    `json:"exitcode"`
			OutData  string `json:"out-data"`
			ErrData  string `json:"err-data"`
		}
		if err := c.Execute(ctx, "guest-exec-status", map[string]any{"pid": started.PID}, &st); err != nil {
			l.t.Fatal(err)
		}
		if st.Exited {
			out, _ := base64.StdEncoding.DecodeString(st.OutData)
			if st.ExitCode != 0 {
				e, _ := base64.StdEncoding.DecodeString(st.ErrData)
				l.t.Fatalf("%s %v in %s: exit %d: %s%s", path, args, spec.Name, st.ExitCode, out, e)
			}
			return string(out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killQEMU kills a qemu machine's QEMU with SIGKILL, as a host crash or
// the OOM killer would, and waits until it is gone.
func (l *rvLab) killQEMU(m machine.Instance) {
	l.t.Helper()
	b, err := os.ReadFile(l.sock(m.Spec(), "pid"))
	if err != nil {
		l.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		l.t.Fatalf("pid file %q: %v", b, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		l.t.Fatal(err)
	}
	select {
	case <-m.Done():
	case <-time.After(time.Minute):
		l.t.Fatal("QEMU still runs a minute after SIGKILL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Stop(ctx); err != nil { // the taps and state of the dead VM
		l.t.Fatal(err)
	}
}

// pgLogPath is PostgreSQL's server log in the Debian image.
const pgLogPath = "/var/log/postgresql/postgresql-15-main.log"

// pgLog reads PostgreSQL's log in a running machine: through the guest
// agent in a VM, through the root of its init in an ns machine.
func (l *rvLab) pgLog(m machine.Instance) string {
	l.t.Helper()
	spec := m.Spec()
	if _, err := os.Stat(l.sock(spec, "qmp.sock")); err == nil {
		return l.guestExec(spec, "/usr/bin/cat", pgLogPath)
	}
	b, err := os.ReadFile(filepath.Join(l.ns.StateDir, spec.Name, "pid"))
	if err != nil {
		l.t.Fatalf("%s is neither a running VM nor an ns machine: %v", spec.Name, err)
	}
	o, err := vnet.ParseOwner(string(b))
	if err != nil {
		l.t.Fatal(err)
	}
	log, err := os.ReadFile(fmt.Sprintf("/proc/%d/root%s", o.PID, pgLogPath))
	if err != nil {
		l.t.Fatal(err)
	}
	return string(log)
}

// recoveredFromCrash checks in PostgreSQL's log that its last start
// replayed WAL: the disk held a database that was never shut down.
func (l *rvLab) recoveredFromCrash(m machine.Instance) {
	l.t.Helper()
	log := l.pgLog(m)
	i := strings.LastIndex(log, "starting PostgreSQL")
	if i < 0 {
		l.t.Fatalf("no start in PostgreSQL's log:\n%s", log)
	}
	last := log[i:]
	for _, want := range []string{"database system was not properly shut down; automatic recovery in progress", "redo done"} {
		if !strings.Contains(last, want) {
			l.t.Fatalf("PostgreSQL's last start lacks %q:\n%s", want, last)
		}
	}
}

// defaultRoutes is the guest's IPv4 default routes, "gateway dev" each,
// comma-separated.
func (l *rvLab) defaultRoutes(spec machine.Spec) string {
	l.t.Helper()
	out := l.guestExec(spec, "/usr/sbin/ip", "-j", "-4", "route", "show", "default")
	var routes []struct{ Gateway, Dev string }
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		l.t.Fatalf("ip route: %v: %q", err, out)
	}
	var got []string
	for _, r := range routes {
		got = append(got, r.Gateway+" "+r.Dev)
	}
	return strings.Join(got, ",")
}
