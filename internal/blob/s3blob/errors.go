package s3blob

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/haven-dr/haven/internal/blob"
)

// code is the S3 error code of err, or "" if err carries no S3 response.
func code(err error) string {
	if err == nil {
		return ""
	}
	return minio.ToErrorResponse(err).Code
}

// classify maps a minio-go error onto the blob error contract: 404 is
// ErrNotFound; 408, 429, 5xx and SlowDown are ErrUnavailable, and so is a
// failure without an HTTP response (refused, reset, timed out).
func classify(op, name string, err error) error {
	if err == nil {
		return nil
	}
	r := minio.ToErrorResponse(err)
	switch s := r.StatusCode; {
	case s == 0:
		return blob.Unavailable(fmt.Errorf("s3blob: %s %s: %w", op, name, err))
	case retained(r):
		return blob.Retained(name, fmt.Errorf("s3blob: %s: HTTP %d %s: %s", op, s, r.Code, r.Message))
	case s == http.StatusNotFound:
		return fmt.Errorf("%w: %s (s3 %s: %s)", blob.ErrNotFound, name, op, r.Code)
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500 || r.Code == "SlowDown":
		return blob.Unavailable(fmt.Errorf("s3blob: %s %s: HTTP %d %s: %w", op, name, s, r.Code, err))
	default:
		return fmt.Errorf("s3blob: %s %s: HTTP %d %s: %w", op, name, s, r.Code, err)
	}
}

// retained reports a refusal because of Object Lock. AWS and versitygw
// answer 403 AccessDenied "Access Denied because object protected by object
// lock."; MinIO answers ObjectLocked ("Object is WORM protected"). A plain
// AccessDenied (a policy refusal) is not a retention: it never expires.
func retained(r minio.ErrorResponse) bool {
	if r.Code == "ObjectLocked" {
		return true
	}
	m := strings.ToLower(r.Message)
	return r.Code == "AccessDenied" && (strings.Contains(m, "object lock") || strings.Contains(m, "worm"))
}
