package upgrade_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/haven-dr/haven/internal/vault"
)

// fixtureDir is the fixture every test here reads.
const fixtureDir = "testdata/fixture"

// fastKDF keeps the fixture vault cheap to open; the parameters are in its
// key file, so a later build opens it just as fast.
var fastKDF = vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}}

// fixture is testdata/fixture/fixture.json: what the tests check the
// fixture's contents against, written with it.
type fixture struct {
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

func readFixture(t *testing.T) *fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, "fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}
