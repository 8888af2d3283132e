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
	return startUnboundStub(t, zone, "iterator", retryDead, servers...)
}

// UnboundStubValidating is UnboundStub validating the answers with
// anchors (DNSKEY or DS records in zone-file syntax) as the zone's trust
// anchors: an answer is secure (AD) only when it validates, and whichever
// server Unbound asks must sign with a key the anchors name. A bogus
// answer is SERVFAIL with an Extended DNS Error (RFC 8914) saying why, so
// a test tells it from a server that did not answer.
func UnboundStubValidating(t testing.TB, zone string, anchors []string, servers ...string) string {
	t.Helper()
	return startUnboundStub(t, zone, "validator iterator", retryDead+"  ede: yes\n"+trustAnchors(anchors), servers...)
}

// retryDead: a dead server is retried after 2 s instead of 15 min, so a
// restarted one gets queries again within the test.
const retryDead = "  infra-host-ttl: 2\n"

// startUnboundStub runs Unbound with the modules and extra server lines.
func startUnboundStub(t testing.TB, zone, modules, extra string, servers ...string) string {
	t.Helper()
	bin := LookPath(t, "unbound")
	dir := t.TempDir()
	port := loopbackPort(t)
	conf := unboundConf(port, dir, modules, extra, zone, servers...)
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startService(t, "unbound", port, bin, "-d", "-c", path)
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// unboundConf is a resolver on 127.0.0.1:port with a stub zone listing
// servers (host:port); extra lines go in the server section.
func unboundConf(port int, dir, modules, extra, zone string, servers ...string) string {
	var stubs strings.Builder
	for _, s := range servers {
		h, p, _ := net.SplitHostPort(s)
		fmt.Fprintf(&stubs, "  stub-addr: %s@%s\n", h, p)
	}
	return fmt.Sprintf(`server:
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
  module-config: "%s"
%s  local-zone: "%s" nodefault
stub-zone:
  name: "%s"
%s`, port, dir, dir, modules, extra, tld(zone), zone, stubs.String())
}

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int { return loopbackPort(t) }
