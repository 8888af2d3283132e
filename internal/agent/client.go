package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Client is the typed client of a running agent's status API.
type Client struct {
	Addr string // host:port, e.g. 127.0.0.1:7717
	HTTP *http.Client
}

// Status fetches the agent's report.
func (c *Client) Status(ctx context.Context) (*Report, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Addr+"/v1/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent at %s: %w", c.Addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return nil, fmt.Errorf("agent at %s: %s: %s", c.Addr, resp.Status, b)
	}
	var r Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("agent at %s: decoding report: %w", c.Addr, err)
	}
	return &r, nil
}
