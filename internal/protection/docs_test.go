package protection

import (
	"os"
	"strings"
	"testing"
)

// The protection config shown in docs/orchestrator.md is accepted as it
// stands, so the documentation cannot drift from the parser.
func TestDocsExampleParses(t *testing.T) {
	b, err := os.ReadFile("../../docs/orchestrator.md")
	if err != nil {
		t.Fatal(err)
	}
	var found int
	for _, block := range strings.Split(string(b), "```yaml\n")[1:] {
		doc, _, _ := strings.Cut(block, "```")
		if !strings.Contains(doc, "\nplans:") {
			continue
		}
		found++
		if _, err := Parse([]byte(doc)); err != nil {
			t.Errorf("docs/orchestrator.md example refused: %v", err)
		}
	}
	if found == 0 {
		t.Fatal("no protection config example found in docs/orchestrator.md")
	}
}
