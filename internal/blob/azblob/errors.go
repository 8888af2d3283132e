package azblob

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/haven-dr/haven/internal/blob"
)

// classify maps an SDK error onto the blob error contract: 404 is
// ErrNotFound; 408, 429 and 5xx are ErrUnavailable, and so is any failure
// without an HTTP response (refused, reset, timed out), because those are
// what a restart or an outage of the service looks like.
func classify(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return blob.Unavailable(fmt.Errorf("azblob: %s %s: %w", op, name, err))
	}
	switch code := re.StatusCode; {
	case re.ErrorCode == string(bloberror.BlobImmutableDueToPolicy):
		// A version-level immutability policy still holds the blob.
		return blob.Retained(name, fmt.Errorf("azblob: %s: HTTP %d %s", op, code, re.ErrorCode))
	case code == http.StatusNotFound:
		return fmt.Errorf("%w: %s (azblob %s: %s)", blob.ErrNotFound, name, op, re.ErrorCode)
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return blob.Unavailable(fmt.Errorf("azblob: %s %s: HTTP %d %s", op, name, code, re.ErrorCode))
	default:
		return fmt.Errorf("azblob: %s %s: HTTP %d %s", op, name, code, re.ErrorCode)
	}
}
