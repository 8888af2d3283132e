package protection

import (
	"testing"
	"time"
)

// TestParseSchedule: five fields, six with seconds, descriptors and a
// zone; Next is what the scheduler runs by.
func TestParseSchedule(t *testing.T) {
	from := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC) // a Sunday
	for _, tc := range []struct {
		spec string
		next time.Time
	}{
		{"0 3 * * SUN", time.Date(2026, 12, 13, 3, 0, 0, 0, time.UTC)},
		{"*/3 * * * * *", from.Add(3 * time.Second)},
		{"@every 6s", from.Add(6 * time.Second)},
		{"@daily", time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)},
		{"CRON_TZ=Europe/Berlin 0 3 * * *", time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)},
	} {
		s, err := ParseSchedule(tc.spec)
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		if got := s.Next(from).UTC(); !got.Equal(tc.next) {
			t.Errorf("%q: next after %s = %s, want %s", tc.spec, from, got, tc.next)
		}
	}
	for _, bad := range []string{"", "0 3 * *", "61 * * * *", "every sunday"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
