package blobopen

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/blob/azblob"
	"github.com/haven-dr/haven/internal/blob/s3blob"
)

// AgentOptions say what PrepareAgent sets up.
type AgentOptions struct {
	// Principals get the append-only bucket policy on S3: IAM user ARNs
	// on AWS, access key IDs on versitygw. Creating the users and their
	// keys is the provider's own step (docs/storage.md).
	Principals []string
	// SASExpiry is how long the Azure agent SAS stays valid.
	SASExpiry time.Duration
}

// AgentAccess says what was prepared and what the agent gets.
type AgentAccess struct {
	Location string            `json:"location"` // the URL the agent uses (no secrets)
	Done     []string          `json:"done"`     // what was set up, for the operator
	Env      map[string]string `json:"env,omitempty"`
	Expires  time.Time         `json:"expires,omitzero"` // of the Azure SAS
}

// PrepareAgent readies the storage at rawURL for an append-only agent,
// acting with the admin credentials getenv hands out. It is idempotent.
//   - s3: the URL must carry lock= and retain=, so the agent's URL locks
//     every object it writes; the bucket is created with Object Lock and
//     versioning, and Principals get s3blob.AgentPolicy.
//   - azblob: the container is created and a container SAS with read,
//     create and list is signed for the agent (Env).
//   - a local directory cannot be made append-only from inside the
//     machine that writes it: use `haven vault serve` on another machine.
func PrepareAgent(ctx context.Context, rawURL string, getenv func(string) string, opt AgentOptions) (*AgentAccess, error) {
	scheme, _, _ := strings.Cut(rawURL, "://")
	switch scheme {
	case "s3":
		return prepareS3(ctx, rawURL, getenv, opt)
	case "azblob":
		return prepareAzure(ctx, rawURL, getenv, opt)
	}
	return nil, fmt.Errorf("%w %q: only s3:// and azblob:// storage can enforce append-only agents; for a directory use `haven vault serve`", ErrBadURL, redact(rawURL))
}

func prepareS3(ctx context.Context, rawURL string, getenv func(string) string, opt AgentOptions) (*AgentAccess, error) {
	cfg, err := s3blob.ParseURL(rawURL, getenv)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	if cfg.Lock == "" {
		return nil, fmt.Errorf("%w: add lock=governance (or compliance) and retain=DURATION to the URL: the agent's URL must lock every object it writes", ErrBadURL)
	}
	if len(opt.Principals) == 0 {
		return nil, fmt.Errorf("%w: name the agent's principal (an IAM user ARN, or the access key ID on versitygw)", ErrBadURL)
	}
	b, err := s3blob.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := b.Prepare(ctx, opt.Principals); err != nil {
		return nil, err
	}
	return &AgentAccess{Location: b.Location(), Done: []string{
		"bucket " + cfg.Bucket + " has Object Lock and versioning",
		"bucket policy: " + strings.Join(opt.Principals, ", ") + " may get, put and list; never delete, bypass a lock or change the bucket",
		fmt.Sprintf("objects written through this URL are locked in %s mode for %v", cfg.Lock, cfg.Retain),
	}}, nil
}

func prepareAzure(ctx context.Context, rawURL string, getenv func(string) string, opt AgentOptions) (*AgentAccess, error) {
	cfg, err := azblob.ParseURL(rawURL, getenv)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	if cfg.Key == "" {
		return nil, fmt.Errorf("%w: signing the agent's SAS needs the account key: set AZURE_STORAGE_KEY", ErrBadURL)
	}
	if opt.SASExpiry <= 0 {
		return nil, errors.New("blobopen: the agent SAS needs a positive lifetime")
	}
	b, err := azblob.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := b.Prepare(ctx); err != nil {
		return nil, err
	}
	expires := time.Now().Add(opt.SASExpiry).UTC().Truncate(time.Second)
	token, err := azblob.AgentSAS(cfg, expires)
	if err != nil {
		return nil, err
	}
	return &AgentAccess{Location: b.Location(), Expires: expires, Env: map[string]string{"AZURE_STORAGE_SAS_TOKEN": token},
		Done: []string{
			"container " + cfg.Container + " exists",
			"agent SAS: read, create (new blobs only), list; no write-over, no delete; expires " + expires.Format(time.RFC3339),
			"version-level immutability is set on the storage account through Azure Resource Manager (docs/storage.md)",
		}}, nil
}
