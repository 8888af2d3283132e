package qmp

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// DialGuest connects to a guest agent socket and synchronises with
// guest-sync-delimited: the agent answers with 0xFF before its JSON, so
// whatever an earlier client left half-read in the channel is skipped up
// to that byte. A guest without a running agent makes this time out.
func DialGuest(ctx context.Context, path string) (*Client, error) {
	c, err := dial(ctx, path)
	if err != nil {
		return nil, err
	}
	if err := c.sync(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("guest agent %s: %w", path, err)
	}
	return c, nil
}

func (c *Client) sync(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline(ctx)
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	id := rand.Int64N(1 << 40)
	b, _ := json.Marshal(request{"guest-sync-delimited", map[string]int64{"id": id}})
	// A leading 0xFF makes the agent drop any partial request before it.
	if _, err := c.conn.Write(append(append([]byte{0xff}, b...), '\n')); err != nil {
		return err
	}
	for {
		if _, err := c.r.ReadBytes(0xff); err != nil {
			return fmt.Errorf("guest-sync-delimited: %w", err)
		}
		resp, err := c.read()
		if err != nil {
			return fmt.Errorf("guest-sync-delimited: %w", err)
		}
		var got int64
		if resp.Return != nil && json.Unmarshal(resp.Return, &got) == nil && got == id {
			return nil
		}
	}
}
