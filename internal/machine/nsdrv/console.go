package nsdrv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The machine's console is a pty, as a container manager gives it: the
// init and agetty expect a terminal on /dev/console. The driver copies
// what the machine writes to the console log.

// openPTY opens a new pty pair on the host's devpts.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("console pty: %w", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("console pty: unlock: %w", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("console pty: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("console pty: %w", err)
	}
	return m, s, nil
}

// copyConsole copies the pty's output to log until the machine is gone
// (stop closed, and the master reads EIO: no process holds the terminal
// any more), then closes both. systemd hangs the console up as it starts
// (vhangup), which also reads as EIO, so EIO alone does not end the copy.
// Terminal line endings become plain newlines.
func copyConsole(master, log *os.File, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	defer log.Close()
	defer master.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := master.Read(buf)
		if n > 0 {
			log.Write(bytes.ReplaceAll(buf[:n], []byte("\r\n"), []byte("\n")))
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, unix.EIO) {
			return
		}
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}
