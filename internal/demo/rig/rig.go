// Package rig builds, on one host, the world Haven's seed scenario runs
// in: a primary site (namespace hv…-prim with the prod network and the
// shop's machines), the "internet" (hv…-inet) where haven dns answers and
// the recovery site is joined, a haven agent replicating into a file vault
// and a haven server. `haven demo`, the end-to-end tests and the
// orchestrator benchmark all build it here, so the three cannot drift
// apart. With Out set, every command the rig runs and every host change it
// makes is printed as a user would type it, so it can be repeated by hand.
package rig

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/haven-dr/haven/internal/vnet"
)

// Options say where the rig lives and how it reports.
type Options struct {
	Dir    string    // work directory (exists): configs, pid files, the vault
	LogDir string    // processes' logs; Dir when empty
	Bin    string    // the haven binary the rig runs
	Env    []string  // the whole environment of every command and process
	Out    io.Writer // where commands are printed; nil prints nothing
	// Cleanup registers how to remove what was just made: fn now, sh as
	// a line of a teardown script. Nil keeps both for Close and Script.
	Cleanup func(sh string, fn func() error)
}

// Rig is one world. Its fields are set as its parts are made.
type Rig struct {
	Options
	Ops          vnet.Ops // host changes: netlink, shown through vnet.Echo when Out is set
	XFS          string   // reflink filesystem for disks and server state; a caller may mount its own
	Lab          *vnet.Lab
	Inet         string // the internet's namespace
	PrimNS       string // the primary site's namespace
	Vault        string // URL of the file vault
	PasswordFile string
	AgentYAML    string
	Procs        map[string]*exec.Cmd // running processes by name
	MachineFiles map[string]string    // primary machine files by machine
	undos        []undo
}

type undo struct {
	fn func() error
	sh string
}

// New starts an empty rig.
func New(opt Options) *Rig {
	if opt.LogDir == "" {
		opt.LogDir = opt.Dir
	}
	r := &Rig{Options: opt, Ops: vnet.Netlink{}, Procs: map[string]*exec.Cmd{}, MachineFiles: map[string]string{}}
	if opt.Out != nil {
		r.Ops = vnet.Echo{Ops: vnet.Netlink{}, Show: func(c string) { r.Say("   $ %s", c) }}
	}
	return r
}

// TB is what the rig needs of a testing.TB.
type TB interface {
	Cleanup(func())
	Error(args ...any)
}

// OnTestEnd is Options.Cleanup for a test: removals run with its other
// cleanups, newest first, and a failed one fails the test.
func OnTestEnd(t TB) func(sh string, fn func() error) {
	return func(_ string, fn func() error) {
		t.Cleanup(func() {
			if err := fn(); err != nil {
				t.Error(err)
			}
		})
	}
}

// Defer registers a removal (see Options.Cleanup); fn may be nil.
func (r *Rig) Defer(sh string, fn func() error) {
	if fn == nil {
		fn = func() error { return nil }
	}
	if r.Cleanup != nil {
		r.Cleanup(sh, fn)
		return
	}
	r.undos = append(r.undos, undo{fn: fn, sh: sh})
}

// Close removes everything registered, newest first, going on past errors.
func (r *Rig) Close() error {
	var errs []error
	for i := len(r.undos) - 1; i >= 0; i-- {
		errs = append(errs, r.undos[i].fn())
	}
	r.undos = nil
	return errors.Join(errs...)
}

// Script is the same removals as shell lines, newest first, for a world
// left running.
func (r *Rig) Script() string {
	var b strings.Builder
	for i := len(r.undos) - 1; i >= 0; i-- {
		if r.undos[i].sh != "" {
			b.WriteString(r.undos[i].sh + "\n")
		}
	}
	return b.String()
}

// Say prints a line to Out.
func (r *Rig) Say(format string, args ...any) {
	if r.Out != nil {
		fmt.Fprintf(r.Out, format+"\n", args...)
	}
}

// Write writes a file of the work directory (mode 0600) and returns its path.
func (r *Rig) Write(name, text string) (string, error) {
	p := filepath.Join(r.Dir, name)
	return p, os.WriteFile(p, []byte(text), 0o600)
}
