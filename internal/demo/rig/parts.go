package rig

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
)

// InitVault makes the file vault Dir/vault with `haven vault init`, its
// password in Dir/password.
func (r *Rig) InitVault(ctx context.Context, password string) error {
	pw, err := r.Write("password", password+"\n")
	if err != nil {
		return err
	}
	r.PasswordFile, r.Vault = pw, "file://"+filepath.Join(r.Dir, "vault")
	_, err = r.Haven(ctx, nil, "vault", "init", "--vault", r.Vault, "--password-file", pw)
	return err
}

// PrimaryMachine writes the machine file the agent's control uses too and
// starts the machine on the prod network with `haven machine start`.
func (r *Rig) PrimaryMachine(ctx context.Context, spec machine.Spec) error {
	att, err := r.Lab.Attachment("prod")
	if err != nil {
		return err
	}
	mf := host.MachineFile{Machine: spec, Networks: map[string]vnet.Attachment{"prod": att},
		StateDir: filepath.Join(r.Dir, "prim-machines"), PIDFile: r.pidFile(spec.Name),
		Log: filepath.Join(r.LogDir, spec.Name+".run.log")}
	b, _ := json.MarshalIndent(mf, "", "  ")
	path, err := r.Write(spec.Name+".machine.json", string(b))
	if err != nil {
		return err
	}
	r.MachineFiles[spec.Name] = path
	r.Defer(r.Bin+" machine stop --file "+path, func() error {
		r.haven(context.Background(), nil, "machine", "stop", "--file", path)
		return nil
	})
	_, err = r.Haven(ctx, nil, "machine", "start", "--file", path)
	return err
}

func (r *Rig) pidFile(name string) string { return filepath.Join(r.Dir, name+".pid") }

// KillMachine kills a primary machine at once (SIGKILL) and returns the
// pid it killed, 0 when none ran.
func (r *Rig) KillMachine(name string) int {
	b, _ := os.ReadFile(r.pidFile(name))
	var pid int
	fmt.Sscan(string(b), &pid)
	if pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return pid
}

// AgentMachine is one machine the primary's agent protects.
type AgentMachine struct {
	Name, Group string
	Disks       string // YAML flow list: [{name: root, path: …}]
	Hooks       string // YAML flow map; empty: none
	Policy      string // YAML flow map
}

// Agent is the primary's haven agent: control API on loopback, reporting
// to the server, reflink snapshots of the machines' disks on the XFS.
type Agent struct {
	Port, ServerPort int
	Token            string // token file, for its API and the server's
	Machines         []AgentMachine
}

// StartAgent writes Dir/agent.yaml and runs `haven agent run`.
func (r *Rig) StartAgent(a Agent) error {
	os.MkdirAll(filepath.Join(r.XFS, "clones"), 0o755)
	path, err := r.Write("agent.yaml", r.agentConfig(a))
	if err != nil {
		return err
	}
	r.AgentYAML = path
	return r.RunAgent()
}

func (r *Rig) agentConfig(a Agent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "vault: %s\n", r.Vault)
	if r.PasswordFile != "" {
		fmt.Fprintf(&b, "password_file: %s\n", r.PasswordFile)
	}
	fmt.Fprintf(&b, "state_dir: %s\nlisten: 127.0.0.1:%d\ncontrol_token_file: %s\n", filepath.Join(r.Dir, "agent-state"), a.Port, a.Token)
	fmt.Fprintf(&b, "server: {url: http://127.0.0.1:%d, agent: prim, token_file: %s, interval: 1s}\nmachines:\n", a.ServerPort, a.Token)
	for _, m := range a.Machines {
		fmt.Fprintf(&b, "  - name: %s\n", m.Name)
		if m.Group != "" {
			fmt.Fprintf(&b, "    group: %s\n", m.Group)
		}
		fmt.Fprintf(&b, "    provider: reflink\n    clone_dir: %s/clones\n    disks: %s\n", r.XFS, m.Disks)
		if m.Hooks != "" {
			fmt.Fprintf(&b, "    hooks: %s\n", m.Hooks)
		}
		// The agent starts and stops the runner itself (no shell and
		// no haven process per order), as `haven machine start|stop
		// --file` would.
		fmt.Fprintf(&b, "    policy: %s\n    control: {machine_file: %s}\n", m.Policy, r.MachineFiles[m.Name])
	}
	return b.String()
}

// RunAgent starts the agent (again) on the same config and state.
func (r *Rig) RunAgent() error {
	return r.Start("agent", "", r.Bin, "agent", "run", "--config", r.AgentYAML)
}
