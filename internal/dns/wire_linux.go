//go:build linux

package dns

import (
	"cmp"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// wireBatch is how many packets one recvmmsg or sendmmsg moves: under load
// the fast path costs two system calls per batch rather than per query,
// which is where the time went once answers were precomputed.
const wireBatch = 32

// mmsgBatch is one socket's batch memory, used by its one reader.
type mmsgBatch struct {
	rc              syscall.RawConn
	in, out         [wireBatch]unix.Mmsghdr
	inIov, outIov   [wireBatch]unix.Iovec
	inName, outName [wireBatch]unix.RawSockaddrInet6
	inBuf           [wireBatch][dns64k]byte
	outBuf          [wireBatch][ednsSize]byte
	n, nout, sent   int
	pend            [wireBatch]int // packets for the general path
	head, npend     int
	err             error
	doRecv, doSend  func(uintptr) bool
}

// dns64k holds any UDP datagram, as miekg/dns's own buffers (UDPSize) do.
const dns64k = 65535

func newFastConn(u *net.UDPConn, s *Server) net.PacketConn {
	rc, err := u.SyscallConn()
	if err != nil {
		return u
	}
	mb := &mmsgBatch{rc: rc}
	for i := range wireBatch {
		mb.inIov[i].Base = &mb.inBuf[i][0]
		mb.inIov[i].SetLen(dns64k)
		mb.in[i].Hdr.Name = (*byte)(unsafe.Pointer(&mb.inName[i]))
		mb.in[i].Hdr.Iov = &mb.inIov[i]
		mb.in[i].Hdr.SetIovlen(1)
		mb.outIov[i].Base = &mb.outBuf[i][0]
		mb.out[i].Hdr.Name = (*byte)(unsafe.Pointer(&mb.outName[i]))
		mb.out[i].Hdr.Iov = &mb.outIov[i]
		mb.out[i].Hdr.SetIovlen(1)
	}
	mb.doRecv, mb.doSend = mb.recvOnce, mb.sendOnce
	return &fastConn{UDPConn: u, s: s, mb: mb}
}

// ReadFrom answers what the cache can, a batch at a time, and returns the
// other packets to miekg/dns one by one.
func (c *fastConn) ReadFrom(b []byte) (int, net.Addr, error) {
	mb := c.mb
	for {
		if mb.head < mb.npend {
			i := mb.pend[mb.head]
			mb.head++
			n := copy(b, mb.inBuf[i][:mb.in[i].Len])
			return n, net.UDPAddrFromAddrPort(sockaddrPort(&mb.inName[i])), nil
		}
		mb.head, mb.npend = 0, 0
		if err := mb.recv(); err != nil {
			return 0, nil, err
		}
		mb.nout = 0
		for i := range mb.n {
			out := c.s.fastReply(&c.sc, mb.outBuf[mb.nout][:0], mb.inBuf[i][:mb.in[i].Len])
			if out == nil || len(out) > ednsSize {
				mb.pend[mb.npend] = i
				mb.npend++
				continue
			}
			j := mb.nout
			mb.nout++
			mb.outName[j] = mb.inName[i]
			mb.out[j].Hdr.Namelen = mb.in[i].Hdr.Namelen
			mb.outIov[j].SetLen(len(out))
		}
		if err := mb.send(); err != nil {
			c.s.log.Debug("dns write", "err", err)
		}
	}
}

func (mb *mmsgBatch) recv() error {
	for i := range mb.in {
		mb.in[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		mb.in[i].Hdr.Flags = 0
		mb.in[i].Len = 0
	}
	mb.n, mb.err = 0, nil
	if err := mb.rc.Read(mb.doRecv); err != nil {
		return err
	}
	return mb.err
}

func (mb *mmsgBatch) recvOnce(fd uintptr) bool {
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&mb.in[0])), wireBatch, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			mb.n = int(r)
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait for the poller
		default:
			mb.err = e
		}
		return true
	}
}

// send writes the batch's replies; a reply the kernel refuses is skipped.
func (mb *mmsgBatch) send() error {
	var first error
	for mb.sent = 0; mb.sent < mb.nout; {
		mb.err = nil
		if err := mb.rc.Write(mb.doSend); err != nil {
			return err
		}
		if mb.err != nil {
			first = cmp.Or(first, mb.err)
			mb.sent++
		}
	}
	return first
}

func (mb *mmsgBatch) sendOnce(fd uintptr) bool {
	for {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&mb.out[mb.sent])), uintptr(mb.nout-mb.sent), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			mb.sent += int(r)
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			mb.err = e
		}
		return true
	}
}

func sockaddrPort(raw *unix.RawSockaddrInet6) netip.AddrPort {
	p := (*[2]byte)(unsafe.Pointer(&raw.Port)) // network byte order at the same offset in both families
	port := uint16(p[0])<<8 | uint16(p[1])
	if raw.Family == unix.AF_INET {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(raw))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
	}
	a := netip.AddrFrom16(raw.Addr)
	if raw.Scope_id != 0 {
		a = a.WithZone(strconv.Itoa(int(raw.Scope_id)))
	}
	return netip.AddrPortFrom(a, port)
}
