package azblob

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	sdk "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
)

// AgentPermissions is what an append-only agent's SAS grants: read, list,
// and create ("c": write a new blob, refused by the service for a name
// that exists). Deliberately absent: write ("w", which replaces existing
// blobs), add, delete, delete version ("x"), tags, move, and
// set-immutability-policy ("i").
var AgentPermissions = sas.ContainerPermissions{Read: true, Create: true, List: true}

// AgentSAS signs a service SAS for the container with AgentPermissions,
// valid from a few minutes ago (clock skew) until expiry. It needs the
// shared key (cfg.Key): the agent then gets only the token, set as
// AZURE_STORAGE_SAS_TOKEN. HTTP is allowed only for an http:// endpoint
// (Azurite on loopback).
func AgentSAS(cfg Config, expiry time.Time) (string, error) {
	if cfg.Key == "" || cfg.Account == "" {
		return "", errors.New("azblob: signing a SAS needs the account and its shared key (AZURE_STORAGE_KEY)")
	}
	cred, err := sdk.NewSharedKeyCredential(cfg.Account, cfg.Key)
	if err != nil {
		return "", fmt.Errorf("azblob: %w", err)
	}
	proto := sas.ProtocolHTTPS
	if strings.HasPrefix(cfg.serviceURL(), "http://") {
		proto = sas.ProtocolHTTPSandHTTP
	}
	qp, err := sas.BlobSignatureValues{
		Protocol:      proto,
		StartTime:     time.Now().Add(-5 * time.Minute).UTC(),
		ExpiryTime:    expiry.UTC(),
		Permissions:   AgentPermissions.String(),
		ContainerName: cfg.Container,
	}.SignWithSharedKey(cred)
	if err != nil {
		return "", fmt.Errorf("azblob: signing SAS: %w", err)
	}
	return qp.Encode(), nil
}

// Prepare creates the container, as an admin, so agents holding only a
// container SAS (which cannot create containers) can write into it.
// Version-level immutability is configured on the storage account through
// Azure Resource Manager, outside the blob API (docs/storage.md).
func (b *Backend) Prepare(ctx context.Context) error {
	return classify("create container", b.cfg.Container, b.createContainer(ctx))
}
