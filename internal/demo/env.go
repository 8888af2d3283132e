package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/haven-dr/haven/internal/machine"
)

// undo is one thing the demo made: how it removes it now (fn) and how a
// user removes it later with --keep (sh, a line of teardown.sh).
type undo struct {
	fn func()
	sh string
}

// env is one run's resources, removed newest first.
type env struct {
	dir    string
	bin    string // the haven binary copied into dir (outlives `go run`)
	out    io.Writer
	undos  []undo
	procs  map[string]*exec.Cmd
	logDir string
}

func (e *env) say(format string, args ...any) { fmt.Fprintf(e.out, format+"\n", args...) }

func (e *env) push(sh string, fn func()) { e.undos = append(e.undos, undo{fn: fn, sh: sh}) }

// teardown removes everything, newest first.
func (e *env) teardown() {
	for i := len(e.undos) - 1; i >= 0; i-- {
		if e.undos[i].fn != nil {
			e.undos[i].fn()
		}
	}
	e.undos = nil
}

// writeTeardown writes teardown.sh: the same removals as shell lines, for
// a demo left running with --keep.
func (e *env) writeTeardown() (string, error) {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# Removes everything `haven demo --keep` left running.\n")
	for i := len(e.undos) - 1; i >= 0; i-- {
		if e.undos[i].sh != "" {
			b.WriteString(e.undos[i].sh + "\n")
		}
	}
	p := filepath.Join(os.TempDir(), filepath.Base(e.dir)+"-teardown.sh")
	return p, os.WriteFile(p, []byte(b.String()), 0o755)
}

// cmd runs `haven args...`, printing it as a user would type it.
func (e *env) run(ctx context.Context, extraEnv []string, args ...string) (string, error) {
	e.say("   $ haven %s", shellJoin(args))
	c := exec.CommandContext(ctx, e.bin, args...)
	c.Env = append(os.Environ(), extraEnv...)
	var out, errb strings.Builder
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	if err != nil {
		return out.String(), fmt.Errorf("haven %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// start runs a long-lived process (in namespace ns when set) in its own
// process group, logging to logDir/name.log.
func (e *env) start(name, ns string, extraEnv []string, prog string, args ...string) error {
	lf, err := os.OpenFile(filepath.Join(e.logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	var c *exec.Cmd
	if ns != "" {
		c = exec.Command("ip", append([]string{"netns", "exec", ns, prog}, args...)...)
	} else {
		c = exec.Command(prog, args...)
	}
	c.Env = append(os.Environ(), extraEnv...)
	c.Stdout, c.Stderr = lf, lf
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	e.procs[name] = c
	pid := c.Process.Pid
	e.push(fmt.Sprintf("kill -s TERM -- -%[1]d 2>/dev/null  # %[2]s\n"+
		"for i in $(seq 100); do kill -0 %[1]d 2>/dev/null || break; sleep 0.3; done; kill -s KILL -- -%[1]d 2>/dev/null", pid, name),
		func() { e.kill(name, syscall.SIGTERM) })
	return nil
}

// kill signals a process group and waits for it (SIGKILL after 30 s).
func (e *env) kill(name string, sig syscall.Signal) {
	c := e.procs[name]
	if c == nil || c.Process == nil {
		return
	}
	syscall.Kill(-c.Process.Pid, sig)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		<-done
	}
	delete(e.procs, name)
}

func (e *env) alive(name string) bool {
	c := e.procs[name]
	return c != nil && c.ProcessState == nil && syscall.Kill(c.Process.Pid, 0) == nil
}

func (e *env) logTail(name string) string {
	b, _ := os.ReadFile(filepath.Join(e.logDir, name+".log"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

func (e *env) write(name, text string) (string, error) {
	p := filepath.Join(e.dir, name)
	return p, os.WriteFile(p, []byte(text), 0o600)
}

// eventually retries fn every 200 ms until it succeeds, ctx ends or d
// passes.
func eventually(ctx context.Context, d time.Duration, what string, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s: %w", what, d, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// httpIn does a request from namespace ns.
func httpIn(ctx context.Context, ns, method, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := machine.HTTPClient(ns).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	return string(b), nil
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
