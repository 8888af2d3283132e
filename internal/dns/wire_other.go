//go:build !linux

package dns

import "net"

type mmsgBatch struct{}

func newFastConn(u *net.UDPConn, s *Server) net.PacketConn { return &fastConn{UDPConn: u, s: s} }

func (c *fastConn) ReadFrom(b []byte) (int, net.Addr, error) { return c.readOne(b) }

// readOne is ReadFrom one packet at a time (where recvmmsg is missing).
func (c *fastConn) readOne(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.UDPConn.ReadFromUDPAddrPort(b)
		if err != nil {
			return n, nil, err
		}
		if !c.s.fastAnswer(c.UDPConn, &c.sc, b[:n], from) {
			return n, net.UDPAddrFromAddrPort(from), nil
		}
	}
}
