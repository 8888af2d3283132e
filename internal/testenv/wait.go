package testenv

import (
	"os"
	"testing"
	"time"
)

// Eventually polls cond every 100 ms and fails the test if it does not
// hold within d: correctness is checked, not speed.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tailBytes is how much of a log a failure message shows.
const tailBytes = 4000

// Tail is the end of b, for a failure message.
func Tail(b []byte) string {
	if len(b) > tailBytes {
		b = b[len(b)-tailBytes:]
	}
	return string(b)
}

// TailFile is the end of a file (empty if it cannot be read), for a
// failure message.
func TailFile(path string) string {
	b, _ := os.ReadFile(path)
	return Tail(b)
}
