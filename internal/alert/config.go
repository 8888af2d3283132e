package alert

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"time"
)

// Config is the server config's alerts section.
type Config struct {
	// Interval between evaluations; default 10s.
	Interval time.Duration `yaml:"interval"`
	// MemoryQuiet: a recovered machine's memory alert resolves once its
	// OOM kills and times at its limit have not grown for this long;
	// default DefaultMemoryQuiet.
	MemoryQuiet time.Duration  `yaml:"memory_quiet"`
	Webhook     *WebhookConfig `yaml:"webhook"`
	SMTP        *SMTPConfig    `yaml:"smtp"`
}

// WebhookConfig: every transition is POSTed as JSON (an Event) to URL.
type WebhookConfig struct {
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"` // e.g. Authorization
	Timeout time.Duration     `yaml:"timeout"` // per attempt; default 10s
}

// SMTPConfig: every transition is mailed through Addr.
type SMTPConfig struct {
	Addr         string        `yaml:"addr"` // host:port
	From         string        `yaml:"from"`
	To           []string      `yaml:"to"`
	Username     string        `yaml:"username"`      // AUTH PLAIN when set
	PasswordFile string        `yaml:"password_file"` // with username
	StartTLS     bool          `yaml:"starttls"`      // require STARTTLS before AUTH and the message
	Timeout      time.Duration `yaml:"timeout"`       // per attempt; default 30s
}

// Defaults fills unset fields and checks the rest.
func (c *Config) Defaults() error {
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.Interval < 0 {
		return fmt.Errorf("alerts.interval %s: must be positive", c.Interval)
	}
	if c.MemoryQuiet == 0 {
		c.MemoryQuiet = DefaultMemoryQuiet
	}
	if c.MemoryQuiet < 0 {
		return fmt.Errorf("alerts.memory_quiet %s: must be positive", c.MemoryQuiet)
	}
	if w := c.Webhook; w != nil {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("alerts.webhook.url %q: want an http:// or https:// URL", w.URL)
		}
		if w.Timeout == 0 {
			w.Timeout = 10 * time.Second
		}
	}
	if s := c.SMTP; s != nil {
		if err := s.check(); err != nil {
			return fmt.Errorf("alerts.smtp: %w", err)
		}
	}
	return nil
}

func (s *SMTPConfig) check() error {
	if _, _, err := net.SplitHostPort(s.Addr); err != nil {
		return fmt.Errorf("addr %q: %v", s.Addr, err)
	}
	if _, err := mail.ParseAddress(s.From); err != nil {
		return fmt.Errorf("from %q: %v", s.From, err)
	}
	if len(s.To) == 0 {
		return errors.New("to: missing")
	}
	for _, t := range s.To {
		if _, err := mail.ParseAddress(t); err != nil {
			return fmt.Errorf("to %q: %v", t, err)
		}
	}
	if (s.Username == "") != (s.PasswordFile == "") {
		return errors.New("username and password_file go together")
	}
	if s.Timeout == 0 {
		s.Timeout = 30 * time.Second
	}
	return nil
}
