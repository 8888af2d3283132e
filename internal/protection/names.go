package protection

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/haven-dr/haven/internal/vnet"
)

// MaxNameLen bounds a name that becomes a path component or a device
// name.
const MaxNameLen = 64

// CheckPathName refuses a name that may not become one component of a
// file path (disk images, state files) or of a device name: empty, too
// long, holding '/', '\' or "..", a control character, invalid UTF-8, or
// starting with '-' (a command would read it as an option).
func CheckPathName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("must not be empty")
	case len(s) > MaxNameLen:
		return fmt.Errorf("%q is longer than %d bytes", s, MaxNameLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%q is not valid UTF-8", s)
	case strings.ContainsAny(s, `/\`):
		return fmt.Errorf("%q must not hold '/' or '\\': it becomes part of a file path", s)
	case strings.Contains(s, ".."), s == ".":
		return fmt.Errorf("%q must not be '.' or hold '..': it becomes part of a file path", s)
	case strings.HasPrefix(s, "-"):
		return fmt.Errorf("%q must not start with '-'", s)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%q must not hold control characters", s)
	}
	return nil
}

// checkPathNames checks every config name that reaches a path: machines
// (also held to nameRE), their disks and NICs, networks and plan groups.
func (c *Config) checkPathNames(k *checker) {
	check := func(field, name string) {
		if err := CheckPathName(name); err != nil {
			k.fail(field, "%v", err)
		}
	}
	for i, m := range c.Machines {
		seen := map[string]bool{}
		for j, d := range m.Disks {
			f := fmt.Sprintf("machines[%d].disks[%d].name", i, j)
			check(f, d.Name)
			if seen[d.Name] {
				k.fail(f, "disk %q named twice in machine %s", d.Name, m.Name)
			}
			seen[d.Name] = true
		}
		for j, n := range m.NICs {
			check(fmt.Sprintf("machines[%d].nics[%d].name", i, j), n.Name)
		}
	}
	for _, s := range []struct {
		kind string
		set  []vnet.Network
	}{{"primary", c.Networks.Primary}, {"recovery", c.Networks.Recovery}, {"test", c.Networks.Test}} {
		for i, n := range s.set {
			check(fmt.Sprintf("networks.%s[%d].name", s.kind, i), n.Name)
		}
	}
	for i, p := range c.Plans {
		for j, g := range p.Groups {
			if g.Name != "" {
				check(fmt.Sprintf("plans[%d].groups[%d].name", i, j), g.Name)
			}
		}
	}
}
