package blobopen_test

import (
	"context"
	"errors"
	"testing"

	"github.com/haven-dr/haven/internal/blob/blobopen"
)

// TestPrepareAgentRefusesBadInput: what cannot be made append-only, or
// lacks what the setup needs, is a usage error before any network I/O.
func TestPrepareAgentRefusesBadInput(t *testing.T) {
	env := func(k string) string {
		return map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s", "AZURE_STORAGE_SAS_TOKEN": "sv=1"}[k]
	}
	agents := blobopen.AgentOptions{Principals: []string{"agent"}, SASExpiry: 1}
	for _, c := range []struct {
		url string
		opt blobopen.AgentOptions
	}{
		{"/srv/vault", agents},
		{"file:///srv/vault", agents},
		{"s3://b?endpoint=127.0.0.1:1", agents}, // no lock: the agent would write unlocked objects
		{"s3://b?endpoint=127.0.0.1:1&lock=governance&retain=1h", blobopen.AgentOptions{}}, // nobody to grant
		{"azblob://c?account=a&endpoint=http://127.0.0.1:1", agents},                       // a SAS cannot sign a SAS
	} {
		if _, err := blobopen.PrepareAgent(context.Background(), c.url, env, c.opt); !errors.Is(err, blobopen.ErrBadURL) {
			t.Errorf("%s: %v, want ErrBadURL", c.url, err)
		}
	}
}
