package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
)

// fakeServer is a misbehaving server, to show the client fails cleanly
// instead of hanging.
func fakeServer(t *testing.T, fn func(net.Conn)) string { return testenv.UnixServer(t, fn) }

// handshakeOK plays a server's side of a good handshake for a 1 MiB export.
func handshakeOK(c net.Conn) bool {
	b := binary.BigEndian.AppendUint64(nil, magicNBD)
	b = binary.BigEndian.AppendUint64(b, magicOpt)
	c.Write(binary.BigEndian.AppendUint16(b, flagFixedNewstyle|flagNoZeroes))
	var cf [4]byte
	if _, err := io.ReadFull(c, cf[:]); err != nil {
		return false
	}
	for {
		var h [16]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return false
		}
		op := binary.BigEndian.Uint32(h[8:])
		if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(h[12:]))); err != nil {
			return false
		}
		if op == optGo {
			info := binary.BigEndian.AppendUint16(nil, infoExport)
			info = binary.BigEndian.AppendUint64(info, 1<<20)
			info = binary.BigEndian.AppendUint16(info, tflagReadOnly)
			c.Write(optReply(op, repInfo, info))
			c.Write(optReply(op, repAck, nil))
			return true
		}
		c.Write(optReply(op, repAck, nil))
	}
}

func optReply(op, typ uint32, data []byte) []byte {
	b := binary.BigEndian.AppendUint64(nil, magicOptReply)
	b = binary.BigEndian.AppendUint32(b, op)
	b = binary.BigEndian.AppendUint32(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// afterRequest completes the handshake, reads one request and answers
// with reply(cookie).
func afterRequest(reply func(cookie uint64) []byte) func(net.Conn) {
	return func(c net.Conn) {
		if !handshakeOK(c) {
			return
		}
		var req [28]byte
		if _, err := io.ReadFull(c, req[:]); err != nil {
			return
		}
		c.Write(reply(binary.BigEndian.Uint64(req[8:])))
		io.Copy(io.Discard, c) // hold the connection open: the client must not wait forever
	}
}

func chunkHeader(flags, typ uint16, cookie uint64, n uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, magicStructured)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint64(b, cookie)
	return binary.BigEndian.AppendUint32(b, n)
}

func TestBadServers(t *testing.T) {
	opt := Options{Export: "hv", Timeout: 300 * time.Millisecond}
	handshakes := map[string]func(net.Conn){
		"not nbd":     func(c net.Conn) { c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n....")) },
		"short hello": func(c net.Conn) { c.Write(binary.BigEndian.AppendUint64(nil, magicNBD)) },
		"silent":      func(c net.Conn) { io.Copy(io.Discard, c) },
	}
	handshakes["huge option reply"] = func(c net.Conn) {
		b := binary.BigEndian.AppendUint64(nil, magicNBD)
		b = binary.BigEndian.AppendUint64(b, magicOpt)
		c.Write(binary.BigEndian.AppendUint16(b, flagFixedNewstyle))
		io.ReadFull(c, make([]byte, 4+16))
		c.Write(optReply(optStructuredRply, repAck, nil)[:16])
		c.Write([]byte{0xff, 0xff, 0xff, 0xff}) // a length of 4 GiB
		io.Copy(io.Discard, c)
	}
	for name, fn := range handshakes {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := Dial(context.Background(), fakeServer(t, fn), opt)
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("took %v", time.Since(start))
			}
		})
	}
	reads := map[string]func(uint64) []byte{
		"wrong cookie": func(c uint64) []byte { return chunkHeader(chunkDone, chunkNone, c+1, 0) },
		"bad magic":    func(c uint64) []byte { return []byte{1, 2, 3, 4, 5, 6, 7, 8} },
		"short chunk":  func(c uint64) []byte { return chunkHeader(chunkDone, chunkOffsetData, c, 4096+8)[:10] },
		"no reply":     func(c uint64) []byte { return nil },
		"data outside": func(c uint64) []byte {
			return append(chunkHeader(chunkDone, chunkOffsetData, c, 8+16), binary.BigEndian.AppendUint64(nil, 1<<30)...)
		},
		"done without data": func(c uint64) []byte { return chunkHeader(chunkDone, chunkNone, c, 0) },
		"oversized chunk":   func(c uint64) []byte { return chunkHeader(chunkDone, chunkOffsetData, c, 1<<31) },
	}
	for name, fn := range reads {
		t.Run(name, func(t *testing.T) {
			c, err := Dial(context.Background(), fakeServer(t, afterRequest(fn)), opt)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			if _, err := c.ReadAt(make([]byte, 4096), 0); err == nil {
				t.Fatal("read succeeded")
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("took %v", time.Since(start))
			}
			if _, err := c.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
				t.Fatalf("after a protocol error: %v, want ErrClosed", err)
			}
		})
	}
}

func TestServerErrorKeepsConnection(t *testing.T) {
	sock := fakeServer(t, func(c net.Conn) {
		if !handshakeOK(c) {
			return
		}
		for i := 0; ; i++ {
			var req [28]byte
			if _, err := io.ReadFull(c, req[:]); err != nil {
				return
			}
			cookie := binary.BigEndian.Uint64(req[8:])
			if i == 0 { // EIO with a message
				msg := "hv broken sector"
				p := binary.BigEndian.AppendUint32(nil, 5)
				p = binary.BigEndian.AppendUint16(p, uint16(len(msg)))
				c.Write(append(chunkHeader(chunkDone, chunkErrBit|1, cookie, uint32(len(p)+len(msg))), append(p, msg...)...))
				continue
			}
			p := binary.BigEndian.AppendUint64(nil, 0)
			c.Write(append(chunkHeader(chunkDone, chunkOffsetData, cookie, 8+4), append(p, 1, 2, 3, 4)...))
		}
	})
	c, err := Dial(context.Background(), sock, Options{Export: "hv", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ReadAt(make([]byte, 4), 0); !errors.Is(err, ErrServer) {
		t.Fatalf("first read: %v, want ErrServer", err)
	}
	b := make([]byte, 4)
	if _, err := c.ReadAt(b, 0); err != nil || b[3] != 4 {
		t.Fatalf("second read: %v %v", b, err)
	}
}
