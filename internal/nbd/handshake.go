package nbd

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// Options say what to negotiate.
type Options struct {
	Export   string   // export name
	Contexts []string // metadata contexts, e.g. BaseAllocation, DirtyPrefix+"bitmap"
	Timeout  time.Duration
}

// Dial connects to a unix socket and negotiates the export.
func Dial(ctx context.Context, path string, opt Options) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("nbd: %w", err)
	}
	c, err := Handshake(ctx, conn, opt)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// Handshake negotiates on an open connection (fixed newstyle, structured
// replies, the metadata contexts, NBD_OPT_GO).
func Handshake(ctx context.Context, conn net.Conn, opt Options) (*Client, error) {
	c := &Client{conn: conn, contexts: map[uint32]string{}, timeout: opt.Timeout, maxBlock: 32 << 20}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	dl := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := c.handshake(opt); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("nbd handshake: %w", err)
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

func (c *Client) handshake(opt Options) error {
	var hello [18]byte
	if _, err := io.ReadFull(c.conn, hello[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint64(hello[0:]) != magicNBD || binary.BigEndian.Uint64(hello[8:]) != magicOpt {
		return protoErr("not a newstyle NBD server")
	}
	sflags := binary.BigEndian.Uint16(hello[16:])
	if sflags&flagFixedNewstyle == 0 {
		return protoErr("server lacks fixed newstyle")
	}
	cflags := uint32(flagFixedNewstyle)
	if sflags&flagNoZeroes != 0 {
		cflags |= flagNoZeroes
	}
	if err := binary.Write(c.conn, binary.BigEndian, cflags); err != nil {
		return err
	}
	if err := c.option(optStructuredRply, nil); err != nil {
		return err
	}
	if _, err := c.expectAck(optStructuredRply, nil); err != nil {
		return fmt.Errorf("structured replies: %w", err)
	}
	if len(opt.Contexts) > 0 {
		if err := c.setMeta(opt); err != nil {
			return err
		}
	}
	return c.goExport(opt.Export)
}

func (c *Client) option(op uint32, data []byte) error {
	b := binary.BigEndian.AppendUint64(nil, magicOpt)
	b = binary.BigEndian.AppendUint32(b, op)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	_, err := c.conn.Write(append(b, data...))
	return err
}

// optReply reads one option reply.
func (c *Client) optReply(op uint32) (uint32, []byte, error) {
	var h [20]byte
	if _, err := io.ReadFull(c.conn, h[:]); err != nil {
		return 0, nil, err
	}
	if binary.BigEndian.Uint64(h[0:]) != magicOptReply {
		return 0, nil, protoErr("bad option reply magic")
	}
	if got := binary.BigEndian.Uint32(h[8:]); got != op {
		return 0, nil, protoErr("reply to option %d, want %d", got, op)
	}
	typ, n := binary.BigEndian.Uint32(h[12:]), binary.BigEndian.Uint32(h[16:])
	if n > 1<<20 {
		return 0, nil, protoErr("option reply of %d bytes", n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(c.conn, data); err != nil {
		return 0, nil, err
	}
	if typ&repErrBit != 0 {
		return typ, data, fmt.Errorf("%w: option %d refused (reply %#x): %s", ErrServer, op, typ, data)
	}
	return typ, data, nil
}

// expectAck reads replies until ACK, handing other replies to each.
func (c *Client) expectAck(op uint32, each func(typ uint32, data []byte) error) (int, error) {
	for n := 0; ; n++ {
		typ, data, err := c.optReply(op)
		if err != nil {
			return n, err
		}
		if typ == repAck {
			return n, nil
		}
		if each == nil {
			return n, protoErr("unexpected reply %d to option %d", typ, op)
		}
		if err := each(typ, data); err != nil {
			return n, err
		}
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func (c *Client) setMeta(opt Options) error {
	b := appendString(nil, opt.Export)
	b = binary.BigEndian.AppendUint32(b, uint32(len(opt.Contexts)))
	for _, q := range opt.Contexts {
		b = appendString(b, q)
	}
	if err := c.option(optSetMetaContext, b); err != nil {
		return err
	}
	_, err := c.expectAck(optSetMetaContext, func(typ uint32, data []byte) error {
		if typ != repMetaContext || len(data) < 4 {
			return protoErr("bad meta context reply")
		}
		c.contexts[binary.BigEndian.Uint32(data)] = string(data[4:])
		return nil
	})
	if err != nil {
		return fmt.Errorf("meta contexts: %w", err)
	}
	for _, q := range opt.Contexts {
		if !c.hasContext(q) {
			return fmt.Errorf("%w: export %q has no metadata context %q", ErrServer, opt.Export, q)
		}
	}
	return nil
}

func (c *Client) hasContext(name string) bool {
	for _, n := range c.contexts {
		if n == name {
			return true
		}
	}
	return false
}

func (c *Client) goExport(name string) error {
	b := appendString(nil, name)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = binary.BigEndian.AppendUint16(b, infoBlockSize)
	if err := c.option(optGo, b); err != nil {
		return err
	}
	gotExport := false
	_, err := c.expectAck(optGo, func(typ uint32, data []byte) error {
		if typ != repInfo || len(data) < 2 {
			return protoErr("bad reply %d to NBD_OPT_GO", typ)
		}
		switch binary.BigEndian.Uint16(data) {
		case infoExport:
			if len(data) != 12 {
				return protoErr("NBD_INFO_EXPORT of %d bytes", len(data))
			}
			c.size, c.flags = int64(binary.BigEndian.Uint64(data[2:])), binary.BigEndian.Uint16(data[10:])
			gotExport = true
		case infoBlockSize:
			if len(data) != 14 {
				return protoErr("NBD_INFO_BLOCK_SIZE of %d bytes", len(data))
			}
			if m := binary.BigEndian.Uint32(data[10:]); m > 0 {
				c.maxBlock = min(m, maxPayload)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("export %q: %w", name, err)
	}
	if !gotExport || c.size < 0 {
		return protoErr("NBD_OPT_GO gave no export size")
	}
	return nil
}
