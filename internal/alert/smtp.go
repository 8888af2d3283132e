package alert

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"strings"
	"time"
)

// Mail sends each transition as a plain-text e-mail.
type Mail struct {
	cfg      SMTPConfig
	password string
}

// NewMail returns the e-mail sink of cfg (after Config.Defaults); it reads
// the password file now so a wrong path is a start-up error.
func NewMail(cfg SMTPConfig) (*Mail, error) {
	m := &Mail{cfg: cfg}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("alerts.smtp.password_file: %w", err)
		}
		m.password = strings.TrimRight(string(b), "\r\n")
	}
	return m, nil
}

// Name implements Sink.
func (m *Mail) Name() string { return "smtp" }

// Send implements Sink.
func (m *Mail) Send(ctx context.Context, e Event) error {
	d := net.Dialer{Timeout: m.cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", m.cfg.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	// One deadline for the whole exchange: a stuck server must not hold
	// the sink's queue for ever.
	conn.SetDeadline(time.Now().Add(m.cfg.Timeout))
	host, _, _ := net.SplitHostPort(m.cfg.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if m.cfg.StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("smtp server offers no STARTTLS and starttls is set")
		}
		if err := c.StartTLS(&tls.Config{ServerName: host}); err != nil {
			return err
		}
	}
	if m.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", m.cfg.Username, m.password, host)); err != nil {
			return err
		}
	}
	if err := c.Mail(m.cfg.From); err != nil {
		return err
	}
	for _, to := range m.cfg.To {
		if err := c.Rcpt(to); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(m.message(e)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func (m *Mail) message(e Event) []byte {
	var b bytes.Buffer
	subject := fmt.Sprintf("[haven] %s %s: %s", strings.ToUpper(e.State), e.Severity, e.Summary)
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\n", m.cfg.From, strings.Join(m.cfg.To, ", "),
		oneLine(subject), e.Time.Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	fmt.Fprintf(&b, "Alert:    %s\r\nState:    %s\r\nSeverity: %s\r\nSince:    %s\r\n", e.ID, e.State, e.Severity, e.Since.Format(time.RFC3339))
	if e.Resolved != nil {
		fmt.Fprintf(&b, "Resolved: %s\r\n", e.Resolved.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "\r\n%s\r\n", oneLine(e.Summary))
	return b.Bytes()
}

// oneLine keeps a summary (which may quote an agent's error) from
// breaking the header block.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
