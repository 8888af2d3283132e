package dns

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// GenerationHeader carries the control plane's generation of an endpoint
// change. Several `haven dns` servers get the same change with the same
// generation; each keeps, per endpoint, the generation of the override it
// holds and refuses an older one, so a late or replayed order can never
// bring back a decision a newer one replaced.
const GenerationHeader = "Haven-Generation"

// ErrStaleGeneration: the change is older than the one the server holds
// for that endpoint (HTTP 412).
var ErrStaleGeneration = errors.New("stale generation")

type generationKey struct{}

// WithGeneration makes the Client send g with the changes made under ctx.
func WithGeneration(ctx context.Context, g uint64) context.Context {
	return context.WithValue(ctx, generationKey{}, g)
}

func generationFrom(ctx context.Context) uint64 {
	g, _ := ctx.Value(generationKey{}).(uint64)
	return g
}

// NextGeneration is a generation newer than last: the wall clock in
// nanoseconds, or last+1 when the clock is behind it, so generations keep
// growing across restarts and across control-plane leaders whose clocks
// roughly agree.
func NextGeneration(last uint64) uint64 {
	return max(last+1, uint64(time.Now().UnixNano()))
}

// nextGen decides the generation of a change of an endpoint whose override
// has generation cur: asked (the control plane's) unless older, or a new
// one for a change made without one (an operator's, haven dns set).
func nextGen(cur, asked uint64) (uint64, error) {
	if asked == 0 {
		return NextGeneration(cur), nil
	}
	if asked < cur {
		return 0, fmt.Errorf("%w: %d < %d already applied", ErrStaleGeneration, asked, cur)
	}
	return asked, nil
}

func parseGeneration(r *http.Request) (uint64, error) {
	v := strings.TrimSpace(r.Header.Get(GenerationHeader))
	if v == "" {
		return 0, nil
	}
	g, err := strconv.ParseUint(v, 10, 64)
	if err != nil || g == 0 {
		return 0, fmt.Errorf("%w: %s %q is not a positive integer", ErrBadRequest, GenerationHeader, v)
	}
	return g, nil
}
