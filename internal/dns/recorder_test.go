package dns

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/miekg/dns"

	"github.com/haven-dr/haven/internal/dns/health"
)

// recorder is a dns.ResponseWriter that keeps the reply, like CoreDNS's
// dnstest.Recorder.
type recorder struct {
	remote net.Addr
	msg    *dns.Msg
}

func newRecorder(udp bool, ip string) *recorder {
	if udp {
		return &recorder{remote: &net.UDPAddr{IP: net.ParseIP(ip), Port: 40000}}
	}
	return &recorder{remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}}
}

func (r *recorder) LocalAddr() net.Addr       { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr      { return r.remote }
func (r *recorder) WriteMsg(m *dns.Msg) error { r.msg = m; return nil }
func (r *recorder) Write(b []byte) (int, error) {
	r.msg = new(dns.Msg)
	return len(b), r.msg.Unpack(b)
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

// newTestServer compiles y into a server that is not listening; queries go
// straight to ServeDNS.
func newTestServer(t *testing.T, y string) *Server {
	t.Helper()
	s, err := New(mustParse(t, y), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// setHealth replaces an endpoint's checker by one fed with a fixed result.
func setHealth(t *testing.T, s *Server, profile, ep string, ok bool) {
	t.Helper()
	_, e, err := s.table.Load().endpoint(profile, ep)
	if err != nil {
		t.Fatal(err)
	}
	probe := health.ProberFunc(func(context.Context, string) error {
		if ok {
			return nil
		}
		return errors.New("down for the test")
	})
	c := health.NewChecker(profile, ep, "test", health.Spec{Timeout: 1e9}, probe, health.Hooks{})
	c.ProbeOnce(context.Background())
	e.checker = c
}
