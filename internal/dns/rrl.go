package dns

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// Response-rate limiting (RRL) after BIND's: each client prefix has an
// account credited ResponsesPerSecond per second, up to one second's worth,
// and debited one per UDP answer, down to -window seconds' worth. Answers
// while it is negative are dropped, except every slip-th, which goes out
// empty with TC set so that a real client behind a spoofed flood retries
// over TCP (never limited: TCP cannot be spoofed). Like BIND and Knot it is
// off unless configured.
const (
	defaultSlip   = 2 // BIND's default
	defaultWindow = 15 * time.Second
	rrlShards     = 64
	rrlShardCap   = 2048 // prefixes per shard; about 128 k in all
	rrlV4Bits     = 24
	rrlV6Bits     = 56
)

type rrlVerdict int

const (
	rrlPass rrlVerdict = iota
	rrlDrop
	rrlSlip
)

type rateLimiter struct {
	rate   float64 // responses per second and prefix
	floor  float64 // lowest balance: -window × rate
	slip   uint32
	now    func() time.Time // tests replace it
	seed   maphash.Seed
	shards [rrlShards]rrlShard
}

type rrlShard struct {
	mu sync.Mutex
	m  map[[16]byte]*rrlBucket
}

type rrlBucket struct {
	balance float64
	last    time.Time
	limited uint32 // answers limited so far, for slip
}

func newRateLimiter(rps, slip int, window time.Duration) *rateLimiter {
	l := &rateLimiter{rate: float64(rps), floor: -window.Seconds() * float64(rps), slip: uint32(slip),
		now: time.Now, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].m = map[[16]byte]*rrlBucket{}
	}
	return l
}

// clientPrefix is the unit of limiting: a spoofed flood names a victim
// address, and its neighbours share its fate as in BIND. IPv4 keys are
// IPv4-mapped, so the two families never share a key.
func clientPrefix(a netip.Addr) [16]byte {
	k := a.As16()
	bits := rrlV6Bits
	if a.Is4() {
		bits = 96 + rrlV4Bits
	}
	for i := bits / 8; i < len(k); i++ {
		k[i] = 0
	}
	return k
}

// check debits one answer to a's prefix and says what to do with it.
func (l *rateLimiter) check(a netip.Addr) rrlVerdict {
	key := clientPrefix(a)
	sh := &l.shards[maphash.Bytes(l.seed, key[:])%rrlShards]
	now := l.now()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := sh.m[key]
	if b == nil {
		if len(sh.m) >= rrlShardCap {
			l.sweep(sh, now)
		}
		b = &rrlBucket{balance: l.rate, last: now}
		sh.m[key] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.balance = min(l.rate, b.balance+dt*l.rate)
		b.last = now
	}
	b.balance = max(b.balance-1, l.floor)
	if b.balance >= 0 {
		return rrlPass
	}
	b.limited++
	if l.slip > 0 && b.limited%l.slip == 0 {
		return rrlSlip
	}
	return rrlDrop
}

// sweep forgets prefixes whose account has refilled (forgetting them
// changes nothing); if the table is still half full, a flood of distinct
// prefixes is under way and the shard starts over rather than grow.
func (l *rateLimiter) sweep(sh *rrlShard, now time.Time) {
	for k, b := range sh.m {
		if now.Sub(b.last).Seconds()*l.rate >= l.rate-b.balance {
			delete(sh.m, k)
		}
	}
	if len(sh.m) >= rrlShardCap/2 {
		clear(sh.m)
	}
}

// compileRateLimit validates the rate_limit section; without one (or with
// responses_per_second 0) the table has no limiter and the query path skips
// it entirely.
func compileRateLimit(e *errs, t *table, rc *RateLimit) {
	if rc == nil {
		return
	}
	slip := defaultSlip
	if rc.Slip != nil {
		slip = *rc.Slip
	}
	window := orDefault(time.Duration(rc.Window), defaultWindow)
	ok := true
	if rc.ResponsesPerSecond < 0 || rc.ResponsesPerSecond > 1_000_000 {
		e.add(rc.at.lineOf("responses_per_second"), "rate_limit.responses_per_second", "must be between 0 (off) and 1000000")
		ok = false
	}
	if slip < 0 || slip > 10 {
		e.add(rc.at.lineOf("slip"), "rate_limit.slip", "must be between 0 (never) and 10")
		ok = false
	}
	if window < time.Second || window > time.Hour {
		e.add(rc.at.lineOf("window"), "rate_limit.window", "must be between 1s and 1h")
		ok = false
	}
	if ok && rc.ResponsesPerSecond > 0 {
		t.rrl = newRateLimiter(rc.ResponsesPerSecond, slip, window)
	}
}
