package azblob_test

import (
	"crypto/rand"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/azblob"
	"github.com/haven-dr/haven/internal/blob/blobtest"
	"github.com/haven-dr/haven/internal/testenv"
)

// TestConformance runs the suite against Azurite, a fresh container for each
// subtest; every other subtest also uses a prefix inside the container.
func TestConformance(t *testing.T) {
	endpoint, account, key := testenv.Azurite(t)
	n := 0
	blobtest.Run(t, func(t *testing.T) blob.Backend {
		n++
		cfg := azblob.Config{
			Container: "hv" + strings.ToLower(rand.Text()[:12]),
			Endpoint:  endpoint, Account: account, Key: key,
		}
		if n%2 == 0 {
			cfg.Prefix = "vaults/one"
		}
		b, err := azblob.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}
