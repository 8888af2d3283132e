package upgrade_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/vault"
)

// fixtureDir is where the generator writes this build's fixture; the
// tests read every directory of testdata, so older releases' fixtures
// kept under their release's name stay tested.
const fixtureDir = "testdata/fixture"

// fastKDF keeps the fixture vault cheap to open; the parameters are in its
// key file, so a later build opens it just as fast.
var fastKDF = vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}}

// fixture is testdata/fixture/fixture.json: what the tests check the
// fixture's contents against, written with it.
type fixture struct {
	dir            string     // testdata/<name>
	Release        string     `json:"release"` // the build that wrote it
	SQLiteSchema   int        `json:"sqlite_schema"`
	PostgresSchema int        `json:"postgres_schema"`
	VaultPassword  string     `json:"vault_password"`
	AdminToken     string     `json:"admin_token"` // its hash is in tokens.json
	Plan           string     `json:"plan"`
	ConfigVersion  int64      `json:"config_version"`
	Machine        string     `json:"machine"`
	Disk           string     `json:"disk"`
	Points         []point    `json:"points"` // oldest first
	Jobs           []string   `json:"jobs"`
	Drill          string     `json:"drill"` // the test failover's job ID
	Exchanges      []exchange `json:"exchanges"`
}

// point is a recovery point of the fixture vault and its disk's checksum.
type point struct {
	ID     string `json:"id"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// exchange is one request an agent of the fixture's release sent and
// the server's answer. Authorization is left out (the token is the test's).
type exchange struct {
	Method   string            `json:"method"`
	Path     string            `json:"path"`
	Header   map[string]string `json:"header"`
	Body     json.RawMessage   `json:"body"`
	Status   int               `json:"status"`
	Response string            `json:"response"`
}

// fixtures reads every testdata/*/fixture.json.
func fixtures(t *testing.T) []*fixture {
	t.Helper()
	files, err := filepath.Glob("testdata/*/fixture.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*/fixture.json (%v): regenerate them (doc.go)", err)
	}
	var fs []*fixture
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f := &fixture{dir: filepath.Dir(file)}
		if err := json.Unmarshal(b, f); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		fs = append(fs, f)
	}
	return fs
}

// eachFixture runs fn on every fixture, as subtests named by directory.
func eachFixture(t *testing.T, fn func(*testing.T, *fixture)) {
	for _, f := range fixtures(t) {
		t.Run(filepath.Base(f.dir), func(t *testing.T) { fn(t, f) })
	}
}
