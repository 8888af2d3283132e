package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientDependencies: the client and its wire types pull in none of
// the server's storage, vault or networking code, so a program that only
// talks to the API stays small (it was 291 packages when the client used
// the store's types).
func TestClientDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/haven-dr/haven/internal/server/client").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"modernc.org/sqlite", "github.com/jackc/pgx", "github.com/vishvananda/netlink",
		"github.com/Azure/azure-sdk-for-go", "github.com/aws/aws-sdk-go-v2", "github.com/minio/minio-go/v7",
		"github.com/haven-dr/haven/internal/store", "github.com/haven-dr/haven/internal/orchestrator",
		"github.com/haven-dr/haven/internal/server", "github.com/haven-dr/haven/internal/protection",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps named %d packages: the check reads nothing", len(deps))
	}
	for _, d := range deps {
		if d == "github.com/haven-dr/haven/internal/server/client" {
			continue
		}
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("the client depends on %s", d)
			}
		}
	}
}
