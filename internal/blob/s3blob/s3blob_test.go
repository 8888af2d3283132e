package s3blob_test

import (
	"crypto/rand"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobtest"
	"github.com/haven-dr/haven/internal/blob/s3blob"
	"github.com/haven-dr/haven/internal/testenv"
)

// TestConformance runs the suite against versitygw, a fresh bucket for each
// subtest; every other subtest also uses a prefix inside the bucket.
func TestConformance(t *testing.T) {
	endpoint, access, secret := testenv.S3Server(t)
	n := 0
	blobtest.Run(t, func(t *testing.T) blob.Backend {
		n++
		cfg := s3blob.Config{
			Bucket:   "hv" + strings.ToLower(rand.Text()[:12]),
			Endpoint: endpoint, Insecure: true, PathStyle: true,
			AccessKey: access, SecretKey: secret,
		}
		if n%2 == 0 {
			cfg.Prefix = "vaults/one"
		}
		b, err := s3blob.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}
