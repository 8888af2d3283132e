package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Webhook POSTs each transition as a JSON Event.
type Webhook struct {
	cfg    WebhookConfig
	client *http.Client
}

// NewWebhook returns the webhook sink of cfg (after Config.Defaults).
func NewWebhook(cfg WebhookConfig) *Webhook {
	return &Webhook{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}}
}

// Name implements Sink.
func (w *Webhook) Name() string { return "webhook" }

// Send implements Sink: any 2xx answer is a delivery.
func (w *Webhook) Send(ctx context.Context, e Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "haven-alerts")
	for k, v := range w.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
