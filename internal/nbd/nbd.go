// Package nbd is a client of the Network Block Device protocol
// (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md): the
// fixed-newstyle handshake, structured replies, metadata contexts
// (base:allocation, qemu:dirty-bitmap:NAME), reads and block status, over a
// unix socket. The agent reads QEMU's fleecing exports with it.
//
// No Go NBD client with block status is served by the module proxy here
// (the client of github.com/pojntfx/go-nbd is not listed, and it has no
// metadata contexts), so this is written from the protocol document.
package nbd

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Errors.
var (
	ErrProtocol = errors.New("nbd: protocol error") // the server broke the protocol
	ErrServer   = errors.New("nbd: server error")   // the server refused a request
	ErrClosed   = errors.New("nbd: client closed")
)

// Protocol constants (proto.md).
const (
	magicNBD        = 0x4e42444d41474943 // "NBDMAGIC"
	magicOpt        = 0x49484156454F5054 // "IHAVEOPT"
	magicOptReply   = 0x3e889045565a9
	magicRequest    = 0x25609513
	magicSimple     = 0x67446698
	magicStructured = 0x668e33ef

	flagFixedNewstyle = 1
	flagNoZeroes      = 2

	optAbort          = 2
	optGo             = 7
	optStructuredRply = 8
	optSetMetaContext = 10

	repAck         = 1
	repInfo        = 3
	repMetaContext = 4
	repErrBit      = 1 << 31

	infoExport    = 0
	infoBlockSize = 3

	cmdRead        = 0
	cmdDisc        = 2
	cmdBlockStatus = 7

	chunkDone       = 1
	chunkNone       = 0
	chunkOffsetData = 1
	chunkOffsetHole = 2
	chunkBlockStat  = 5
	chunkErrBit     = 1 << 15

	tflagReadOnly = 2
)

// Extent states in base:allocation; in qemu:dirty-bitmap:NAME, 1 is dirty.
const (
	StateHole  = 1
	StateZero  = 2
	StateDirty = 1
)

// Context names.
const (
	BaseAllocation = "base:allocation"
	DirtyPrefix    = "qemu:dirty-bitmap:"
)

// maxPayload bounds what the client accepts in one reply, so a broken
// server cannot make it allocate without limit.
const maxPayload = 64 << 20

// DefaultTimeout bounds one request or the handshake: a server that stops
// answering fails the read instead of hanging it.
const DefaultTimeout = 60 * time.Second

// Client is one connection to one export. Requests run one at a time.
type Client struct {
	mu       sync.Mutex
	conn     net.Conn
	size     int64
	flags    uint16
	maxBlock uint32
	contexts map[uint32]string // negotiated metadata context IDs
	cookie   uint64
	timeout  time.Duration
	closed   bool
	covered  int // bytes of the current read the reply filled
}

// Size is the export's size in bytes.
func (c *Client) Size() int64 { return c.size }

// ReadOnly reports whether the server exports read-only.
func (c *Client) ReadOnly() bool { return c.flags&tflagReadOnly != 0 }

// Contexts lists the metadata contexts the server agreed to.
func (c *Client) Contexts() []string {
	var out []string
	for _, n := range c.contexts {
		out = append(out, n)
	}
	return out
}

// Close disconnects (NBD_CMD_DISC) and closes the socket.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.conn.SetDeadline(time.Now().Add(time.Second))
	c.cookie++
	c.conn.Write(request(0, cmdDisc, c.cookie, 0, 0)) // best effort: no reply to DISC
	return c.conn.Close()
}

func (c *Client) fail(err error) error {
	// After a protocol error the stream position is unknown: nothing
	// more can be read from it safely.
	c.closed = true
	c.conn.Close()
	return err
}

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}
