package dns

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fakeClock is the limiter's time in tests, so that nothing depends on
// how fast the machine is.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func verdicts(l *rateLimiter, a string, n int) map[rrlVerdict]int {
	out := map[rrlVerdict]int{}
	for range n {
		out[l.check(netip.MustParseAddr(a))]++
	}
	return out
}

// TestRateLimiterFakeClock walks one prefix through a burst, the slip
// pattern, refilling and the window, while other prefixes stay unaffected.
func TestRateLimiterFakeClock(t *testing.T) {
	clk := newFakeClock()
	l := newRateLimiter(5, 2, 2*time.Second)
	l.now = clk.now
	expect := func(what string, got map[rrlVerdict]int, pass, drop, slip int) {
		t.Helper()
		if got[rrlPass] != pass || got[rrlDrop] != drop || got[rrlSlip] != slip {
			t.Fatalf("%s: pass %d drop %d slip %d, want %d %d %d", what, got[rrlPass], got[rrlDrop], got[rrlSlip], pass, drop, slip)
		}
	}
	expect("burst of 11 from 192.0.2.1", verdicts(l, "192.0.2.1", 11), 5, 3, 3)
	expect("same /24", verdicts(l, "192.0.2.200", 2), 0, 1, 1)
	expect("another /24", verdicts(l, "192.0.3.1", 5), 5, 0, 0)
	expect("IPv6 same /56", verdicts(l, "2001:db8:0:ff::1", 6), 5, 1, 0)
	expect("IPv6 next /56", verdicts(l, "2001:db8:0:100::1", 5), 5, 0, 0)
	// The account is at its floor, -window × rate = -10: one second of
	// silence refills only 5, so the prefix is still limited...
	expect("more excess", verdicts(l, "192.0.2.1", 20), 0, 10, 10)
	clk.advance(time.Second)
	expect("after 1 s", verdicts(l, "192.0.2.1", 1), 0, 1, 0)
	// ...and the window (2 s) plus one second of burst later it is whole.
	clk.advance(3 * time.Second)
	expect("after the window", verdicts(l, "192.0.2.1", 6), 5, 0, 1)
	clk.advance(200 * time.Millisecond)
	expect("0.2 s at 5/s", verdicts(l, "192.0.2.1", 1), 0, 1, 0)
}

func TestRateLimiterSlipZeroAndOne(t *testing.T) {
	for slip, want := range map[int][3]int{0: {3, 7, 0}, 1: {3, 0, 7}} {
		l := newRateLimiter(3, slip, time.Second)
		l.now = newFakeClock().now
		got := verdicts(l, "198.51.100.9", 10)
		if got[rrlPass] != want[0] || got[rrlDrop] != want[1] || got[rrlSlip] != want[2] {
			t.Errorf("slip %d: %v, want pass/drop/slip %v", slip, got, want)
		}
	}
}

// TestRateLimiterTableBounded: a flood of distinct prefixes cannot grow the
// table past its cap.
func TestRateLimiterTableBounded(t *testing.T) {
	l := newRateLimiter(1, 2, time.Second)
	l.now = newFakeClock().now
	for i := range 300_000 {
		l.check(netip.AddrFrom4([4]byte{byte(i >> 16), byte(i >> 8), byte(i), 1}))
	}
	n := 0
	for i := range l.shards {
		n += len(l.shards[i].m)
	}
	if n > rrlShards*rrlShardCap {
		t.Fatalf("%d prefixes kept, cap %d", n, rrlShards*rrlShardCap)
	}
}

// TestRateLimitConfig: off unless configured (as BIND and Knot), BIND's
// defaults for slip and window, and bad values named by line and field.
func TestRateLimitConfig(t *testing.T) {
	tb, err := compile(mustParse(t, issueSample))
	if err != nil || tb.rrl != nil {
		t.Fatalf("without rate_limit: limiter %v, err %v", tb.rrl, err)
	}
	tb, err = compile(mustParse(t, issueSample+"rate_limit: {responses_per_second: 20}\n"))
	if err != nil || tb.rrl == nil || tb.rrl.rate != 20 || tb.rrl.slip != 2 || tb.rrl.floor != -300 {
		t.Fatalf("defaults: %+v, %v", tb.rrl, err)
	}
	for _, tc := range []struct {
		y, field string
		line     int
	}{
		{"rate_limit: {responses_per_second: -1}", "rate_limit.responses_per_second", 15},
		{"rate_limit: {responses_per_second: 5, slip: 11}", "rate_limit.slip", 15},
		{"rate_limit: {responses_per_second: 5, window: 500ms}", "rate_limit.window", 15},
		{"rate_limit:\n  responses_per_second: 5\n  burst: 3", "rate_limit.burst", 17},
	} {
		err := parseAndCompile(issueSample + tc.y + "\n")
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || ce.Line != tc.line {
			t.Errorf("%q: err %v, want a ConfigError on %s at line %d", tc.y, err, tc.field, tc.line)
		}
	}
}
