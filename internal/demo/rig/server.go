package rig

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/haven-dr/haven/internal/server/client"
	"github.com/haven-dr/haven/internal/vnet"
)

// Server is a `haven server` whose recovery site is joined to the
// internet (edge:).
type Server struct {
	Name         string // process and config file name; "server" when empty
	Port         int
	State        string // state_dir
	Vault        string
	PasswordFile string // empty: $HAVEN_PASSWORD
	Edge         string
	Extra        string   // more server.yaml (tunnels:, copies:)
	Args         []string // more arguments (--recover-from-vault)
	// NetNS runs the server in that network namespace (entered with
	// nsenter, which keeps the host's mounts: the namespaces it makes
	// are seen, and removed, from outside); empty: the caller's.
	NetNS string
}

func (s Server) name() string {
	if s.Name == "" {
		return "server"
	}
	return s.Name
}

// Env points the CLI at the server.
func (s Server) Env() []string {
	return []string{fmt.Sprintf("HAVEN_SERVER=127.0.0.1:%d", s.Port), "HAVEN_TOKEN_FILE=" + filepath.Join(s.State, "admin.token")}
}

// StartServer writes the server's config, starts it and waits until its
// API answers. Its removal stops what it left running on purpose (the
// recovered machines run detached, so they outlive it) and its namespaces.
func (r *Rig) StartServer(ctx context.Context, s Server) (*client.Client, error) {
	cfg := fmt.Sprintf("listen: 127.0.0.1:%d\nstate_dir: %s\nvault: %s\n", s.Port, s.State, s.Vault)
	if s.PasswordFile != "" {
		cfg += "password_file: " + s.PasswordFile + "\n"
	}
	cfg += "edge: " + s.Edge + "\nstandby_interval: 1s\n" + s.Extra
	path, err := r.Write(s.name()+".yaml", cfg)
	if err != nil {
		return nil, err
	}
	prog, args := r.Bin, append([]string{"server", "--config", path}, s.Args...)
	if s.NetNS != "" {
		prog, args = "nsenter", append([]string{"--net=/run/netns/" + s.NetNS, r.Bin}, args...)
	}
	if err := r.Start(s.name(), "", prog, args...); err != nil {
		return nil, err
	}
	r.Defer(fmt.Sprintf("kill -s TERM %[3]d 2>/dev/null; sleep 2\n"+
		"for f in %[1]s/host/machines/*/detached/*.json; do [ -e \"$f\" ] && %[2]s machine stop --file \"$f\"; done\n"+
		"for n in $(ls /run/netns | grep \"^$(cat %[1]s/host/host-id)-\"); do ip netns del $n; done",
		s.State, r.Bin, r.Procs[s.name()].Process.Pid), func() error { return r.RemoveRecoverySite(s) })
	var c *client.Client
	err = Eventually(ctx, time.Minute, "haven server up", func() error {
		if !r.Alive(s.name()) {
			return fmt.Errorf("haven server exited:\n%s", r.Log(s.name()))
		}
		b, err := os.ReadFile(filepath.Join(s.State, "admin.token"))
		if err != nil {
			return err
		}
		c = client.New(fmt.Sprintf("127.0.0.1:%d", s.Port), strings.TrimSpace(string(b)), 10*time.Second)
		_, err = c.Jobs(ctx, "", false, 1)
		return err
	})
	return c, err
}

// RemoveRecoverySite stops the server, the machines it left running and
// its namespaces. A machine runner still alive after its stop is an error
// (and is killed).
func (r *Rig) RemoveRecoverySite(s Server) error {
	r.Kill(s.name(), syscall.SIGTERM)
	files, _ := filepath.Glob(filepath.Join(s.State, "host", "machines", "*", "detached", "*.json"))
	for _, f := range files {
		r.haven(context.Background(), nil, "machine", "stop", "--file", f)
	}
	var errs []error
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "machine\x00run\x00--file\x00"+s.State) {
			var pid int
			fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
			errs = append(errs, fmt.Errorf("machine runner left after stop: %q", b))
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if id := HostID(s.State); id != "" {
		ents, _ := os.ReadDir("/run/netns")
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), id+"-") {
				errs = append(errs, vnet.Netlink{}.DelNS(e.Name()))
			}
		}
	}
	return errors.Join(errs...)
}

// HostID is the recovery host's ID, the prefix of its namespaces; empty
// before the server made it.
func HostID(state string) string {
	b, _ := os.ReadFile(filepath.Join(state, "host", "host-id"))
	return strings.TrimSpace(string(b))
}
