package orchestrator

import (
	"testing"
)

// Every kind of job runs to its end against the fakes and leaves the
// plan where it should.
func TestEngineEveryKind(t *testing.T) {
	for _, k := range jobKinds {
		t.Run(k.typ, func(t *testing.T) {
			w := newWorld(t)
			w.prepare(k, "alpha")
			j := w.wait(w.submit(k.typ, "alpha", k.paramsFor(w)).ID)
			w.checkEnd(k, j)
		})
	}
}
