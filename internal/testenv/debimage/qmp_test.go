package debimage

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// command sends JSON commands over a QMP or guest-agent socket and returns
// the reply to the last one.
func command(sock string, cmds ...string) (string, error) {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if strings.HasSuffix(sock, "qmp.sock") {
		if _, err := r.ReadString('\n'); err != nil { // greeting
			return "", err
		}
	}
	var last string
	for _, cmd := range cmds {
		if _, err := fmt.Fprintln(c, cmd); err != nil {
			return "", err
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return "", err
			}
			var m map[string]json.RawMessage
			if json.Unmarshal([]byte(line), &m) != nil {
				continue
			}
			if _, ev := m["event"]; ev {
				continue
			}
			if e, bad := m["error"]; bad {
				return "", fmt.Errorf("%s: %s", cmd, e)
			}
			last = strings.TrimSpace(line)
			break
		}
	}
	return last, nil
}

// lockedTail keeps the last 8 KiB written to it (QEMU's stderr).
type lockedTail struct {
	mu  sync.Mutex
	buf []byte
}

func (l *lockedTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > 8192 {
		l.buf = l.buf[len(l.buf)-8192:]
	}
	return len(p), nil
}

func (l *lockedTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}
