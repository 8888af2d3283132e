package qmp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
)

// fake serves one connection on a unix socket with fn.
func fake(t *testing.T, fn func(c net.Conn, r *bufio.Reader)) string {
	return testenv.UnixServer(t, func(c net.Conn) { fn(c, bufio.NewReader(c)) })
}

// TestGuestAgent plays a guest agent that has stale output in the channel
// (what an earlier client left): the sync skips it up to the 0xFF, and
// freeze and thaw then work; a failing command returns its error.
func TestGuestAgent(t *testing.T) {
	var got []string
	sock := fake(t, func(c net.Conn, r *bufio.Reader) {
		c.Write([]byte(`{"return": 3}` + "\n" + `{"return": {}` + "\n")) // stale, half a line
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var req struct {
				Execute   string          `json:"execute"`
				Arguments json.RawMessage `json:"arguments"`
			}
			if err := json.Unmarshal(bytes.TrimLeft(line, "\xff"), &req); err != nil {
				return
			}
			got = append(got, req.Execute)
			switch req.Execute {
			case "guest-sync-delimited":
				var a struct{ ID int64 }
				json.Unmarshal(req.Arguments, &a)
				b, _ := json.Marshal(map[string]int64{"return": a.ID})
				c.Write(append(append([]byte{0xff}, b...), '\n'))
			case "guest-fsfreeze-freeze":
				c.Write([]byte(`{"return": 2}` + "\n"))
			case "guest-fsfreeze-thaw":
				c.Write([]byte(`{"error": {"class": "GenericError", "desc": "hv: nothing frozen"}}` + "\n"))
			}
		}
	})
	ctx := context.Background()
	ga, err := DialGuest(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ga.Close()
	var n int
	if err := ga.Execute(ctx, "guest-fsfreeze-freeze", nil, &n); err != nil || n != 2 {
		t.Fatalf("freeze: %d, %v", n, err)
	}
	var qe *Error
	if err := ga.Execute(ctx, "guest-fsfreeze-thaw", nil, nil); !errors.As(err, &qe) || qe.Desc != "hv: nothing frozen" {
		t.Fatalf("thaw: %v", err)
	}
	if len(got) != 3 || got[0] != "guest-sync-delimited" {
		t.Fatalf("commands %v", got)
	}
}

// A guest whose agent does not run never answers: DialGuest gives up at
// the context's deadline.
func TestGuestAgentSilent(t *testing.T) {
	sock := fake(t, func(c net.Conn, r *bufio.Reader) { io.Copy(io.Discard, r) })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := DialGuest(ctx, sock); err == nil || time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("silent guest agent: %v after %v", err, time.Since(start))
	}
}

// A socket that is not QMP is refused at the greeting.
func TestNotQMP(t *testing.T) {
	sock := fake(t, func(c net.Conn, r *bufio.Reader) { c.Write([]byte("{\"hello\": 1}\n")); r.ReadBytes('\n') })
	if _, err := Dial(context.Background(), sock); !errors.Is(err, ErrProtocol) {
		t.Fatalf("got %v, want ErrProtocol", err)
	}
}
