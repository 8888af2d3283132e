package host

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// A detached machine's `haven machine run` holds an exclusive flock on
// <pid file>.lock for its whole life. The kernel drops it when the process
// dies however it dies, so "is it running" never depends on a pid file
// that a crash left behind or that a starting runner has not written yet,
// and two runners of one machine cannot both get past start.

// LockPath is the run lock of a machine whose pid file is pidFile.
func LockPath(pidFile string) string { return pidFile + ".lock" }

// TakeRunLock takes the run lock and returns the open file that holds it
// (keep it open while running). ok is false when another process holds it.
func TakeRunLock(pidFile string) (f *os.File, ok bool, err error) {
	f, err = os.OpenFile(LockPath(pidFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return f, true, nil
}

// RunLockHeld reports whether a runner of the machine is alive (running
// or still starting).
func RunLockHeld(pidFile string) bool {
	f, ok, err := TakeRunLock(pidFile)
	if err != nil {
		return false
	}
	if ok {
		f.Close()
		return false
	}
	return true
}
