package rig

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// killGrace is how long a process group has to end after SIGTERM.
const killGrace = 60 * time.Second

// Haven runs `haven args...` with extraEnv added, printed as a user would
// type it, and returns its standard output.
func (r *Rig) Haven(ctx context.Context, extraEnv []string, args ...string) (string, error) {
	r.Say("   $ haven %s", shellJoin(args))
	return r.haven(ctx, extraEnv, args...)
}

func (r *Rig) haven(ctx context.Context, extraEnv []string, args ...string) (string, error) {
	c := exec.CommandContext(ctx, r.Bin, args...)
	c.Env = append(append([]string(nil), r.Env...), extraEnv...)
	var out, errb strings.Builder
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		return out.String(), fmt.Errorf("haven %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// Command runs any other program (ip, mkfs.xfs, mount…), printed, and
// returns its trimmed output.
func (r *Rig) Command(prog string, args ...string) (string, error) {
	r.Say("   $ %s %s", prog, shellJoin(args))
	out, err := exec.Command(prog, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v %s", prog, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// Start runs a long-lived process (in namespace ns when set) in its own
// process group, logging to LogDir/name.log, printed with a trailing &.
// It is killed (SIGTERM) on removal.
func (r *Rig) Start(name, ns, prog string, args ...string) error {
	shown := filepath.Base(prog) + " " + shellJoin(args)
	if ns != "" {
		shown = "ip netns exec " + ns + " " + shown
	}
	r.Say("   $ %s &", shown)
	lf, err := os.OpenFile(filepath.Join(r.LogDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	c := exec.Command(prog, args...)
	if ns != "" {
		c = exec.Command("ip", append([]string{"netns", "exec", ns, prog}, args...)...)
	}
	c.Env = r.Env
	c.Stdout, c.Stderr = lf, lf
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	r.Procs[name] = c
	pid := c.Process.Pid
	r.Defer(fmt.Sprintf("kill -s TERM -- -%[1]d 2>/dev/null  # %[2]s\n"+
		"for i in $(seq 100); do kill -0 %[1]d 2>/dev/null || break; sleep 0.3; done; kill -s KILL -- -%[1]d 2>/dev/null", pid, name),
		func() error { r.Kill(name, syscall.SIGTERM); return nil })
	return nil
}

// Kill signals a process group and waits for it (SIGKILL after a minute).
func (r *Rig) Kill(name string, sig syscall.Signal) {
	c := r.Procs[name]
	if c == nil || c.Process == nil {
		return
	}
	syscall.Kill(-c.Process.Pid, sig)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(killGrace):
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		<-done
	}
	delete(r.Procs, name)
}

// Alive says whether the named process still runs.
func (r *Rig) Alive(name string) bool {
	c := r.Procs[name]
	return c != nil && c.ProcessState == nil && syscall.Kill(c.Process.Pid, 0) == nil
}

// Log is the end of the named process's log, for error messages.
func (r *Rig) Log(name string) string { return Tail(filepath.Join(r.LogDir, name+".log")) }

// Tail is the last 6000 bytes of a file.
func Tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// shellJoin quotes what a shell would split, so a printed command can be
// pasted.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$&;|<>*?()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
