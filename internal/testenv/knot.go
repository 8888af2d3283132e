package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TSIGKey is a shared transfer key as Knot's config names it.
type TSIGKey struct {
	Name, Algorithm, Secret string // e.g. "xfr.example.test.", "hmac-sha256", base64
}

// Knot is a running knotd secondary.
type Knot struct {
	Addr string // 127.0.0.1:port, UDP and TCP
	Log  string // knotd's log file
}

// KnotSecondary starts Knot DNS (knotd) on 127.0.0.1 as a plain secondary
// of zone, transferring it with key from the primary at 127.0.0.1:primaryPort
// and accepting NOTIFY signed with the same key from 127.0.0.1. It keeps
// nothing after the test: its config, database and journal live in a
// temporary directory, and the process is killed in t.Cleanup.
func KnotSecondary(t testing.TB, zone string, primaryPort int, key TSIGKey) *Knot {
	t.Helper()
	bin := LookPath(t, "knotd")
	dir := t.TempDir()
	port := loopbackPort(t)
	conf := fmt.Sprintf(`server:
    rundir: "%[1]s"
    listen: 127.0.0.1@%[2]d
log:
  - target: "%[1]s/knot.log"
    any: info
database:
    storage: "%[1]s"
key:
  - id: %[3]s
    algorithm: %[4]s
    secret: %[5]s
remote:
  - id: primary
    address: 127.0.0.1@%[6]d
    key: %[3]s
acl:
  - id: notify-from-primary
    address: 127.0.0.1
    key: %[3]s
    action: notify
template:
  - id: default
    storage: "%[1]s"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: none
zone:
  - domain: %[7]s
    master: primary
    acl: notify-from-primary
`, dir, port, key.Name, key.Algorithm, key.Secret, primaryPort, zone)
	path := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startService(t, "knotd", port, bin, "-c", path)
	return &Knot{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Log: filepath.Join(dir, "knot.log")}
}
