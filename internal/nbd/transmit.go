package nbd

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

func request(flags, typ uint16, cookie uint64, off uint64, n uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, magicRequest)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint64(b, cookie)
	b = binary.BigEndian.AppendUint64(b, off)
	return binary.BigEndian.AppendUint32(b, n)
}

// ReadAt reads len(p) bytes at off (io.ReaderAt), in requests of at most
// the server's maximum block size.
func (c *Client) ReadAt(p []byte, off int64) (int, error) {
	return c.ReadAtContext(context.Background(), p, off)
}

// ReadAtContext is ReadAt bounded by ctx.
func (c *Client) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 || off > c.size {
		return 0, fmt.Errorf("nbd: read at %d: outside the export (%d bytes)", off, c.size)
	}
	want := p
	if off+int64(len(p)) > c.size {
		want = p[:c.size-off]
	}
	done := 0
	for done < len(want) {
		n := min(len(want)-done, int(c.maxBlock))
		if err := c.do(ctx, cmdRead, uint64(off)+uint64(done), want[done:done+n], nil); err != nil {
			return done, err
		}
		done += n
	}
	if done < len(p) {
		return done, io.EOF
	}
	return done, nil
}

// Extent is a run of bytes with one state.
type Extent struct {
	Offset, Length int64
	Flags          uint32
}

// BlockStatus asks for the state of [off, off+n) in every negotiated
// context and returns the extents per context name. A server may describe
// less than asked (never nothing); see Map for a whole range.
func (c *Client) BlockStatus(ctx context.Context, off int64, n uint32) (map[string][]Extent, error) {
	out := map[string][]Extent{}
	err := c.do(ctx, cmdBlockStatus, uint64(off), nil, func(id uint32, desc []byte) error {
		name, ok := c.contexts[id]
		if !ok {
			return protoErr("block status for unknown context %d", id)
		}
		pos := off
		if es := out[name]; len(es) > 0 {
			pos = es[len(es)-1].Offset + es[len(es)-1].Length
		}
		for i := 0; i+8 <= len(desc); i += 8 {
			l := int64(binary.BigEndian.Uint32(desc[i:]))
			if l == 0 {
				return protoErr("empty block status extent")
			}
			out[name] = append(out[name], Extent{Offset: pos, Length: l, Flags: binary.BigEndian.Uint32(desc[i+4:])})
			pos += l
		}
		return nil
	}, n)
	return out, err
}

// Map describes [0, size) of the export in every negotiated context.
func (c *Client) Map(ctx context.Context) (map[string][]Extent, error) {
	out := map[string][]Extent{}
	for pos := int64(0); pos < c.size; {
		n := uint32(min(c.size-pos, 1<<30))
		got, err := c.BlockStatus(ctx, pos, n)
		if err != nil {
			return nil, err
		}
		next := c.size
		for _, name := range c.contexts {
			end := pos
			for _, e := range got[name] {
				if e.Offset < pos { // already described by an earlier request
					continue
				}
				out[name] = append(out[name], e)
				end = e.Offset + e.Length
			}
			next = min(next, end)
		}
		if next <= pos {
			return nil, protoErr("block status at %d described nothing", pos)
		}
		// Contexts that ran ahead are cut back to next, so the
		// following request describes each byte exactly once.
		for name, es := range out {
			for len(es) > 0 && es[len(es)-1].Offset >= next {
				es = es[:len(es)-1]
			}
			if k := len(es) - 1; k >= 0 && es[k].Offset+es[k].Length > next {
				es[k].Length = next - es[k].Offset
			}
			out[name] = es
		}
		pos = next
	}
	return out, nil
}

// do sends one request and reads its reply chunks: read data goes to buf
// (at the request's offset), block status descriptors to status.
func (c *Client) do(ctx context.Context, typ uint16, off uint64, buf []byte, status func(uint32, []byte) error, statusLen ...uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	if d, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.cookie++
	n := uint32(len(buf))
	if len(statusLen) > 0 {
		n = statusLen[0]
	}
	if _, err := c.conn.Write(request(0, typ, c.cookie, off, n)); err != nil {
		return c.fail(fmt.Errorf("nbd: %w", err))
	}
	err := c.replies(typ, off, buf, status)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}
