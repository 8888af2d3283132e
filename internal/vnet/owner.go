package vnet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/haven-dr/haven/internal/atomicfile"
)

// ErrOwned is returned by cleanups for a resource whose recorded owner is a
// live process: a running Haven (say, mid-failover) still uses it.
var ErrOwned = errors.New("owned by a running haven process")

// Owner identifies the process that made a site resource. The start time
// (clock ticks after boot, field 22 of /proc/pid/stat) tells the process
// from a later one that reused its pid.
type Owner struct {
	PID   int
	Start uint64
}

// Self is this process as an owner.
func Self() Owner {
	o, _ := OwnerOf(os.Getpid())
	return o
}

// OwnerOf reads pid's start time; false if no such process is running (a
// zombie has finished running).
func OwnerOf(pid int) (Owner, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Owner{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the name may hold spaces and ')'
	if i < 0 {
		return Owner{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return Owner{}, false
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return Owner{PID: pid, Start: start}, err == nil
}

// Alive reports whether the owner process is still running.
func (o Owner) Alive() bool {
	cur, ok := OwnerOf(o.PID)
	return ok && cur == o
}

// String is the record format: "pid starttime".
func (o Owner) String() string { return fmt.Sprintf("%d %d", o.PID, o.Start) }

// ParseOwner reads an owner record.
func ParseOwner(s string) (Owner, error) {
	var o Owner
	if _, err := fmt.Sscanf(s, "%d %d", &o.PID, &o.Start); err != nil || o.PID <= 0 {
		return Owner{}, fmt.Errorf("vnet: bad owner record %q", s)
	}
	return o, nil
}

// WriteOwner records o at path, atomically: a reader never sees half a
// record.
func WriteOwner(path string, o Owner) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, []byte(o.String()+"\n"), 0o644)
}

// Owned returns an error wrapping ErrOwned, naming what and the owner's pid,
// if the record at path names a live process other than this one (a
// process may always remove its own). A missing or unreadable record (a
// crash before it was written, an older Haven) means no owner.
func Owned(path, what string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	o, err := ParseOwner(string(b))
	if err != nil || !o.Alive() || o == Self() {
		return nil
	}
	return fmt.Errorf("%s: %w (pid %d)", what, ErrOwned, o.PID)
}
