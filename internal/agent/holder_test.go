package agent

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestLockHolderUnique: every agent names itself differently in the vault's
// lock files (it was the constant "haven-agent" for all of them), and the
// name says which host and process to look at.
func TestLockHolderUnique(t *testing.T) {
	host, _ := os.Hostname()
	self := fmt.Sprintf("haven-agent@%s/%d/", host, os.Getpid())
	seen := map[string]bool{}
	for range 100 {
		h := lockHolder()
		if !strings.HasPrefix(h, self) || len(h) <= len(self) || seen[h] {
			t.Fatalf("holder %q: want unique names starting %q", h, self)
		}
		seen[h] = true
	}
}
