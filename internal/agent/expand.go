package agent

import (
	"fmt"
	"os"
)

// envField is a config field that expandEnv expands.
type envField struct {
	name string
	ptr  *string
}

// expandEnv replaces $VAR and ${VAR} in the fields that name places: the
// vault URL, password_file, state_dir, control_token_file, the server's
// url and token_file, clone_dir, qmp, guest_agent, disk paths and freeze mountpoints. Nothing else is expanded: hook commands are shell text that
// /bin/sh expands itself from the agent's environment, and expanding them
// here would eat the shell's own $VAR, $$ and $1. "$$" stands for one "$".
// An unset variable is an error, so a path cannot silently lose a part.
func (c *Config) expandEnv(lookup func(string) (string, bool)) error {
	fields := []envField{{"vault", &c.Vault}, {"password_file", &c.PasswordFile}, {"state_dir", &c.StateDir},
		{"control_token_file", &c.ControlTokenFile}}
	if c.Server != nil {
		fields = append(fields, envField{"server: url", &c.Server.URL}, envField{"server: token_file", &c.Server.TokenFile})
	}
	for i := range c.Machines {
		m := &c.Machines[i]
		fields = append(fields, envField{fmt.Sprintf("machine %q: clone_dir", m.Name), &m.CloneDir},
			envField{fmt.Sprintf("machine %q: qmp", m.Name), &m.QMP}, envField{fmt.Sprintf("machine %q: guest_agent", m.Name), &m.GuestAgent})
		for j := range m.Disks {
			fields = append(fields, envField{fmt.Sprintf("machine %q: disk %q: path", m.Name, m.Disks[j].Name), &m.Disks[j].Path})
		}
		for j := range m.Freeze {
			fields = append(fields, envField{fmt.Sprintf("machine %q: freeze", m.Name), &m.Freeze[j]})
		}
	}
	for _, f := range fields {
		v, err := expand(*f.ptr, lookup)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		*f.ptr = v
	}
	return nil
}

// expand is os.Expand with "$$" as an escaped "$" and unset variables
// reported.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	var missing string
	out := os.Expand(s, func(name string) string {
		if name == "$" {
			return "$"
		}
		v, ok := lookup(name)
		if !ok && missing == "" {
			missing = name
		}
		return v
	})
	if missing != "" {
		return "", fmt.Errorf("%q: environment variable $%s is not set (write $$ for a literal $)", s, missing)
	}
	return out, nil
}
