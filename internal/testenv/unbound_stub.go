package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// UnboundStub starts a plain caching resolver (no ECS, no validation) on
// 127.0.0.1 whose stub zone lists several authoritative servers
// (host:port each), as a registrar's NS set does: it picks among them and
// goes on to the others when one does not answer. Returns host:port.
func UnboundStub(t testing.TB, zone string, servers ...string) string {
	t.Helper()
	bin := LookPath(t, "unbound")
	dir := t.TempDir()
	port := loopbackPort(t)
	var stubs strings.Builder
	for _, s := range servers {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&stubs, "  stub-addr: %s@%s\n", h, p)
	}
	conf := fmt.Sprintf(`server:
  interface: 127.0.0.1
  port: %d
  do-ip6: no
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "%s"
  pidfile: "%s/unbound.pid"
  use-syslog: no
  verbosity: 1
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  qname-minimisation: no
  module-config: "iterator"
  infra-host-ttl: 2
  local-zone: "%s" nodefault
stub-zone:
  name: "%s"
%s`, port, dir, dir, tld(zone), zone, stubs.String())
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startService(t, "unbound", port, bin, "-d", "-c", path)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
