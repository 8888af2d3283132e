package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/vault"
)

func TestDemoRunsTwice(t *testing.T) {
	dir := t.TempDir()
	opt := Options{Dir: dir, Password: "demo", DiskSize: 32 << 20, KDF: vault.TestKDF}
	for i := range 2 {
		var out bytes.Buffer
		if err := Run(context.Background(), opt, &out); err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, out.String())
		}
		if !strings.Contains(out.String(), "SHA-256 equals the source") {
			t.Fatalf("run %d did not verify the restore:\n%s", i, out.String())
		}
	}
}
