package hostapi

import (
	"crypto/tls"
	"net"
	"net/http/httptrace"
	"time"

	"golang.org/x/sys/unix"
)

// A host that loses power sends no reset: a call in flight to it (a
// start, a health wait) would wait for TCP to give up, minutes. Keepalive
// probes while the connection waits for an answer, and a user timeout
// while what was sent is unacknowledged, end it within about 20 s; a
// host that works on a long call still answers its kernel's probes.
const (
	keepIdle     = 5 * time.Second
	keepInterval = 5 * time.Second
	keepCount    = 3
	userTimeout  = 20 * time.Second
)

// watchDead is the trace that sets both on every connection a call
// uses, whatever dialed it (a test's dialer enters a namespace first).
var watchDead = &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { watchConn(i.Conn) }}

func watchConn(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	tcp.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: keepIdle, Interval: keepInterval, Count: keepCount})
	if raw, err := tcp.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(userTimeout/time.Millisecond))
		})
	}
}
