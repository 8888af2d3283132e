package dns

import (
	"strconv"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/dns/health"
)

// compileMonitor checks a profile's monitor and returns the probe settings,
// or nil when the profile has no monitor (endpoints always served).
func compileMonitor(e *errs, m *Monitor, field string) *health.Spec {
	if m == nil {
		return nil
	}
	s := m.healthSpec()
	s.Protocol = strings.ToLower(s.Protocol)
	switch s.Protocol {
	case "http":
		s.Port = orDefault(s.Port, 80)
	case "https":
		s.Port = orDefault(s.Port, 443)
	case "tcp":
		if s.Port == 0 {
			e.add(m.at.line, field+".port", "a tcp monitor needs a port")
		}
	default:
		e.add(m.at.lineOf("protocol"), field+".protocol", "%q is not http, https or tcp", m.Protocol)
	}
	if s.Port < 0 || s.Port > 65535 {
		e.add(m.at.lineOf("port"), field+".port", "%d is not a port", s.Port)
	}
	checkHTTPFields(e, m, &s, field)
	checkTiming(e, m, &s, field)
	return &s
}

func checkHTTPFields(e *errs, m *Monitor, s *health.Spec, field string) {
	if s.Protocol == "tcp" {
		return
	}
	s.Path = orDefault(s.Path, "/")
	if !strings.HasPrefix(s.Path, "/") {
		e.add(m.at.lineOf("path"), field+".path", "%q must start with /", s.Path)
	}
	if len(m.Headers) > 8 {
		e.add(m.at.lineOf("headers"), field+".headers", "at most 8 custom headers")
	}
	for _, r := range m.ExpectedStatus {
		sr, ok := parseStatusRange(r)
		if !ok {
			e.add(m.at.lineOf("expected_status"), field+".expected_status", "%q is not a status code or range like 200-299", r)
		}
		s.ExpectedStatus = append(s.ExpectedStatus, sr)
	}
	if s.Host == "" {
		s.Host = m.Headers["Host"]
	}
}

func checkTiming(e *errs, m *Monitor, s *health.Spec, field string) {
	s.Interval = orDefault(s.Interval, defaultInterval)
	if s.Interval < time.Second || s.Interval > 300*time.Second {
		e.add(m.at.lineOf("interval"), field+".interval", "%v is outside 1s..300s", s.Interval)
	}
	s.Timeout = orDefault(s.Timeout, min(maxTimeout, s.Interval))
	if s.Timeout <= 0 || s.Timeout > s.Interval {
		e.add(m.at.lineOf("timeout"), field+".timeout", "%v must be positive and at most the interval", s.Timeout)
	}
	if s.ToleratedFailures < 0 || s.ToleratedFailures > 9 {
		e.add(m.at.lineOf("tolerated_failures"), field+".tolerated_failures", "must be between 0 and 9")
	}
	s.RequiredSuccesses = orDefault(s.RequiredSuccesses, 1)
	if s.RequiredSuccesses < 1 || s.RequiredSuccesses > 10 {
		e.add(m.at.lineOf("required_successes"), field+".required_successes", "must be between 1 and 10")
	}
}

func parseStatusRange(s string) (health.StatusRange, bool) {
	lo, hi, found := strings.Cut(strings.TrimSpace(s), "-")
	if !found {
		hi = lo
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	ok := err1 == nil && err2 == nil && l >= 100 && h <= 599 && l <= h
	return health.StatusRange{Lo: l, Hi: h}, ok
}
