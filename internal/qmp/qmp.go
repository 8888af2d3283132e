// Package qmp speaks QEMU's JSON monitor protocols: QMP (the VM's monitor
// socket) and the guest agent's protocol (QGA, a chardev socket wired to
// virtio-serial org.qemu.guest_agent.0). Both are JSON objects, one per
// line; QMP greets and negotiates capabilities, QGA needs a sync handshake
// to skip what an earlier client left unread.
//
// Written here rather than taken from github.com/digitalocean/go-qemu: the
// agent needs a few commands with typed results and QGA's
// guest-sync-delimited resynchronisation, which that library's monitor
// does not do, and the repo already speaks QMP as plain JSON lines
// (internal/machine/qemudrv).
package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ErrProtocol marks a monitor that does not speak the protocol (bad JSON,
// an unexpected answer).
var ErrProtocol = errors.New("qmp: protocol error")

// Error is an error QEMU returned for a command.
type Error struct {
	Command string
	Class   string
	Desc    string
}

func (e *Error) Error() string { return fmt.Sprintf("qmp %s: %s: %s", e.Command, e.Class, e.Desc) }

// DefaultTimeout bounds one command when ctx has no deadline, so a monitor
// that stops answering fails the cycle instead of hanging it.
const DefaultTimeout = 30 * time.Second

// Monitor runs QMP commands: a Client on the VM's own socket, or Libvirt
// through libvirtd for a domain whose socket libvirt holds.
type Monitor interface {
	// Execute runs cmd with args (nil: none) and decodes its return
	// value into out (nil: ignored).
	Execute(ctx context.Context, cmd string, args, out any) error
	Close() error
}

var _ Monitor = (*Client)(nil)

// Client is one monitor connection. Commands run one at a time.
type Client struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

// Dial connects to a QMP socket: greeting, then qmp_capabilities.
func Dial(ctx context.Context, path string) (*Client, error) {
	c, err := dial(ctx, path)
	if err != nil {
		return nil, err
	}
	c.deadline(ctx)
	var greet struct {
		QMP *json.RawMessage `json:"QMP"`
	}
	line, err := c.r.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &greet)
	}
	if err == nil && greet.QMP == nil {
		err = fmt.Errorf("%w: no QMP greeting: %.80q", ErrProtocol, line)
	}
	if err == nil {
		err = c.run("qmp_capabilities", nil, nil)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("qmp %s: %w", path, err)
	}
	return c, nil
}

func dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: %w", err)
	}
	return &Client{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}, nil
}

// Close ends the connection.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) deadline(ctx context.Context) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(DefaultTimeout)
	}
	c.conn.SetDeadline(dl)
}

// Execute runs cmd with args (nil: none) and decodes its return value into
// out (nil: ignored).
func (c *Client) Execute(ctx context.Context, cmd string, args, out any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline(ctx)
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	err := c.run(cmd, args, out)
	if ctx.Err() != nil && err != nil && !errors.As(err, new(*Error)) {
		return fmt.Errorf("qmp %s: %w", cmd, ctx.Err())
	}
	return err
}

type request struct {
	Execute   string `json:"execute"`
	Arguments any    `json:"arguments,omitempty"`
}

type response struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string `json:"event"`
}

func (c *Client) run(cmd string, args, out any) error {
	b, err := json.Marshal(request{cmd, args})
	if err != nil {
		return fmt.Errorf("qmp %s: %w", cmd, err)
	}
	if _, err := c.conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("qmp %s: %w", cmd, err)
	}
	for { // asynchronous events come between commands: skip them
		resp, err := c.read()
		if err != nil {
			return fmt.Errorf("qmp %s: %w", cmd, err)
		}
		if resp.Event != "" {
			continue
		}
		return resp.decode(cmd, out)
	}
}

// decode returns the command's error or decodes its return value into out.
func (resp *response) decode(cmd string, out any) error {
	if resp.Error != nil {
		return &Error{Command: cmd, Class: resp.Error.Class, Desc: resp.Error.Desc}
	}
	if resp.Return == nil {
		return fmt.Errorf("qmp %s: %w: neither return nor error", cmd, ErrProtocol)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(resp.Return, out); err != nil {
		return fmt.Errorf("qmp %s: %w: %v", cmd, ErrProtocol, err)
	}
	return nil
}

func (c *Client) read() (*response, error) {
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("%w: %v in %.80q", ErrProtocol, err, line)
	}
	return &resp, nil
}
