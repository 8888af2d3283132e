package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// listeners are the sockets of the DNS service: several UDP sockets sharing
// one port through SO_REUSEPORT (so the kernel spreads queries over cores)
// and one TCP listener on the same port.
type listeners struct {
	udp []net.PacketConn
	tcp net.Listener
}

func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	return errors.Join(err, serr)
}

// listen binds addr. With port 0 it picks a port free for both UDP and TCP.
func listen(addr string, nUDP int) (*listeners, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var last error
	for range 20 {
		l, err := tryListen(host, port, nUDP)
		if err == nil || port != "0" {
			return l, err
		}
		last = err // the picked UDP port was taken for TCP; pick again
	}
	return nil, last
}

func tryListen(host, port string, nUDP int) (*listeners, error) {
	lc := net.ListenConfig{Control: reusePort}
	ctx := context.Background()
	first, err := lc.ListenPacket(ctx, "udp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("dns listen udp: %w", err)
	}
	l := &listeners{udp: []net.PacketConn{first}}
	bound := net.JoinHostPort(host, strconv.Itoa(first.LocalAddr().(*net.UDPAddr).Port))
	if l.tcp, err = lc.Listen(ctx, "tcp", bound); err != nil {
		l.close()
		return nil, fmt.Errorf("dns listen tcp: %w", err)
	}
	for len(l.udp) < nUDP {
		pc, err := lc.ListenPacket(ctx, "udp", bound)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("dns listen udp: %w", err)
		}
		l.udp = append(l.udp, pc)
	}
	return l, nil
}

func (l *listeners) close() {
	for _, pc := range l.udp {
		pc.Close()
	}
	if l.tcp != nil {
		l.tcp.Close()
	}
}
