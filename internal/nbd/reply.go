package nbd

import (
	"encoding/binary"
	"fmt"
	"io"
)

// replies reads the reply to the request just sent: a simple reply, or
// structured chunks up to the one flagged done. A server error fails the
// request but leaves the connection usable; anything malformed closes it.
func (c *Client) replies(typ uint16, off uint64, buf []byte, status func(uint32, []byte) error) error {
	var magic [4]byte
	var serverErr error
	c.covered = 0
	for {
		if _, err := io.ReadFull(c.conn, magic[:]); err != nil {
			return c.fail(fmt.Errorf("nbd: reply: %w", err))
		}
		switch binary.BigEndian.Uint32(magic[:]) {
		case magicSimple:
			return c.simple(typ, buf)
		case magicStructured:
		default:
			return c.fail(protoErr("bad reply magic %#x", magic))
		}
		var h [16]byte
		if _, err := io.ReadFull(c.conn, h[:]); err != nil {
			return c.fail(fmt.Errorf("nbd: reply: %w", err))
		}
		flags, ctyp := binary.BigEndian.Uint16(h[0:]), binary.BigEndian.Uint16(h[2:])
		cookie, n := binary.BigEndian.Uint64(h[4:]), binary.BigEndian.Uint32(h[12:])
		if cookie != c.cookie {
			return c.fail(protoErr("reply for request %d, want %d", cookie, c.cookie))
		}
		if n > maxPayload+8 {
			return c.fail(protoErr("reply chunk of %d bytes", n))
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(c.conn, data); err != nil {
			return c.fail(fmt.Errorf("nbd: reply: %w", err))
		}
		if err := c.chunk(ctyp, typ, off, buf, data, status); err != nil {
			if !isServerErr(err) {
				return c.fail(err)
			}
			serverErr = err
		}
		if flags&chunkDone != 0 {
			if serverErr == nil && typ == cmdRead && c.covered != len(buf) {
				return c.fail(protoErr("read reply covered %d of %d bytes", c.covered, len(buf)))
			}
			return serverErr
		}
	}
}

type serverError struct{ error }

func (e serverError) Unwrap() error { return e.error }

func isServerErr(err error) bool { _, ok := err.(serverError); return ok }

func (c *Client) simple(typ uint16, buf []byte) error {
	var h [12]byte
	if _, err := io.ReadFull(c.conn, h[:]); err != nil {
		return c.fail(fmt.Errorf("nbd: reply: %w", err))
	}
	if cookie := binary.BigEndian.Uint64(h[4:]); cookie != c.cookie {
		return c.fail(protoErr("reply for request %d, want %d", cookie, c.cookie))
	}
	if e := binary.BigEndian.Uint32(h[0:]); e != 0 {
		return fmt.Errorf("%w: error %d", ErrServer, e)
	}
	if typ != cmdRead {
		return c.fail(protoErr("simple reply to block status"))
	}
	// Structured replies were negotiated, but the protocol still allows a
	// simple reply to a read: the data follows in full.
	if _, err := io.ReadFull(c.conn, buf); err != nil {
		return c.fail(fmt.Errorf("nbd: read data: %w", err))
	}
	return nil
}

func (c *Client) chunk(ctyp, typ uint16, off uint64, buf, data []byte, status func(uint32, []byte) error) error {
	switch {
	case ctyp == chunkNone:
		return nil
	case ctyp&chunkErrBit != 0:
		if len(data) < 6 {
			return protoErr("short error chunk")
		}
		code, mlen := binary.BigEndian.Uint32(data), int(binary.BigEndian.Uint16(data[4:]))
		msg := data[6:min(len(data), 6+mlen)]
		return serverError{fmt.Errorf("%w: error %d: %s", ErrServer, code, msg)}
	case ctyp == chunkOffsetData && typ == cmdRead:
		if len(data) < 8 {
			return protoErr("short data chunk")
		}
		at := binary.BigEndian.Uint64(data)
		if at < off || at-off+uint64(len(data)-8) > uint64(len(buf)) {
			return protoErr("data chunk at %d outside the request", at)
		}
		c.covered += copy(buf[at-off:], data[8:])
		return nil
	case ctyp == chunkOffsetHole && typ == cmdRead:
		if len(data) != 12 {
			return protoErr("bad hole chunk")
		}
		at, n := binary.BigEndian.Uint64(data), uint64(binary.BigEndian.Uint32(data[8:]))
		if at < off || at-off+n > uint64(len(buf)) {
			return protoErr("hole chunk at %d outside the request", at)
		}
		clear(buf[at-off : at-off+n])
		c.covered += int(n)
		return nil
	case ctyp == chunkBlockStat && typ == cmdBlockStatus:
		if len(data) < 4 || (len(data)-4)%8 != 0 {
			return protoErr("bad block status chunk")
		}
		return status(binary.BigEndian.Uint32(data), data[4:])
	}
	return protoErr("unexpected chunk type %d", ctyp)
}
