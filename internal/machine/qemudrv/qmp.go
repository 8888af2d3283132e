package qemudrv

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// qmp runs one QMP command on the monitor socket: read the greeting,
// negotiate capabilities, execute. Plain JSON lines are all QMP needs.
func qmp(ctx context.Context, socket, command string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("qmp: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(10 * time.Second))
	}
	r := bufio.NewReader(c)
	if _, err := r.ReadBytes('\n'); err != nil {
		return fmt.Errorf("qmp greeting: %w", err)
	}
	for _, cmd := range []string{"qmp_capabilities", command} {
		if err := qmpExec(c, r, cmd); err != nil {
			return err
		}
	}
	return nil
}

func qmpExec(c net.Conn, r *bufio.Reader, cmd string) error {
	b, _ := json.Marshal(map[string]string{"execute": cmd})
	if _, err := c.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("qmp %s: %w", cmd, err)
	}
	for { // skip asynchronous events until the command's answer
		line, err := r.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("qmp %s: %w", cmd, err)
		}
		var msg struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Desc string `json:"desc"`
			} `json:"error"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			return fmt.Errorf("qmp %s: %w", cmd, err)
		}
		if msg.Error != nil {
			return fmt.Errorf("qmp %s: %s", cmd, msg.Error.Desc)
		}
		if msg.Return != nil {
			return nil
		}
	}
}
