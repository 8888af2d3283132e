package alert

import (
	"encoding/base64"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// received is what the sink received in one SMTP transaction.
type received struct {
	auth string // decoded AUTH PLAIN response
	from string
	to   []string
	data string
}

// smtpSink is a minimal SMTP server on 127.0.0.1: enough of RFC 5321 for
// net/smtp (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT). It refuses MAIL
// with 451 (a temporary failure) for the first tempFail transactions.
type smtpSink struct {
	ln       net.Listener
	mu       sync.Mutex
	tempFail int
	got      chan received
}

func newSMTPSink(t *testing.T, tempFail int) *smtpSink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{ln: ln, tempFail: tempFail, got: make(chan received, 8)}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.serve(c) }()
		}
	}()
	return s
}

func (s *smtpSink) refuse() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tempFail--
	return s.tempFail >= 0
}

func (s *smtpSink) serve(nc net.Conn) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	c := textproto.NewConn(nc)
	c.PrintfLine("220 hvsink ESMTP")
	var m received
	for {
		line, err := c.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			c.PrintfLine("250-hvsink\r\n250 AUTH PLAIN")
		case "AUTH":
			_, resp, _ := strings.Cut(arg, " ")
			b, _ := base64.StdEncoding.DecodeString(resp)
			m.auth = string(b)
			c.PrintfLine("235 ok")
		case "MAIL":
			if s.refuse() {
				c.PrintfLine("451 try again later")
				continue
			}
			m.from = arg
			c.PrintfLine("250 ok")
		case "RCPT":
			m.to = append(m.to, arg)
			c.PrintfLine("250 ok")
		case "DATA":
			c.PrintfLine("354 go on")
			b, err := c.ReadDotBytes()
			if err != nil {
				return
			}
			m.data = string(b)
			c.PrintfLine("250 queued")
			s.got <- m
		case "QUIT":
			c.PrintfLine("221 bye")
			return
		default:
			c.PrintfLine("502 unknown")
		}
	}
}

// TestMailThroughSMTP: a transition reaches a real SMTP server on
// loopback, after one temporary refusal, authenticated with the password
// file, with the alert in the subject and body.
func TestMailThroughSMTP(t *testing.T) {
	sink := newSMTPSink(t, 1)
	pw := filepath.Join(t.TempDir(), "smtp.pw")
	if err := os.WriteFile(pw, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{SMTP: &SMTPConfig{Addr: sink.ln.Addr().String(), From: "haven@example.test",
		To: []string{"ops@example.test", "dr@example.test"}, Username: "haven", PasswordFile: pw}}
	if err := cfg.Defaults(); err != nil {
		t.Fatal(err)
	}
	m, err := NewMail(*cfg.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	n := NewNotifier(quiet, fastRetry, m)
	run(t, n)
	a := Alert{ID: "agent-silent/dc1", Severity: Critical, Summary: "agent dc1 silent\n(no heartbeat for 1m0s or more)", Since: t0}
	n.Deliver([]Event{{State: Firing, Time: t0, Alert: a}})

	got := next(t, sink.got)
	if got.auth != "\x00haven\x00hunter2" {
		t.Errorf("AUTH PLAIN %q, want user haven with the file's password", got.auth)
	}
	if got.from != "FROM:<haven@example.test>" || strings.Join(got.to, ",") != "TO:<ops@example.test>,TO:<dr@example.test>" {
		t.Errorf("envelope from %q to %q", got.from, got.to)
	}
	for _, want := range []string{"Subject: [haven] FIRING critical: agent dc1 silent (no heartbeat for 1m0s or more)\n",
		"To: ops@example.test, dr@example.test\n", "Alert:    agent-silent/dc1\n", "Since:    2026-06-01T12:00:00Z\n"} {
		if !strings.Contains(got.data, want) {
			t.Errorf("message lacks %q:\n%s", want, got.data)
		}
	}
	waitCount(t, n, "smtp", "ok", 1)
	if r := value(t, n.deliveries.WithLabelValues("smtp", "retry")); r != 1 {
		t.Errorf("retries %v, want 1 (the 451)", r)
	}
}

// TestAlertsConfigRefusesBadInput: mistakes are named at start-up.
func TestAlertsConfigRefusesBadInput(t *testing.T) {
	for name, c := range map[string]Config{
		"webhook scheme": {Webhook: &WebhookConfig{URL: "ftp://x/hook"}},
		"webhook empty":  {Webhook: &WebhookConfig{}},
		"smtp addr":      {SMTP: &SMTPConfig{Addr: "mail", From: "a@b", To: []string{"c@d"}}},
		"smtp from":      {SMTP: &SMTPConfig{Addr: "mail:25", From: "nobody", To: []string{"c@d"}}},
		"smtp no to":     {SMTP: &SMTPConfig{Addr: "mail:25", From: "a@b"}},
		"smtp user only": {SMTP: &SMTPConfig{Addr: "mail:25", From: "a@b", To: []string{"c@d"}, Username: "u"}},
		"interval":       {Interval: -time.Second},
	} {
		if err := c.Defaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewMail(SMTPConfig{Addr: "mail:25", From: "a@b", To: []string{"c@d"}, Username: "u",
		PasswordFile: "/nonexistent/pw"}); err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Errorf("missing password file: %v", err)
	}
}
