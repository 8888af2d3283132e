package protection

import (
	"fmt"
	"slices"
	"time"

	"github.com/robfig/cron/v3"
)

// Drill is a plan's scheduled drill: at each instant of Schedule the
// server runs the plan's test failover from Point, then Checks against the
// test copy, keeps the copy up for Keep, and cleans it up.
type Drill struct {
	// Schedule is a cron expression in UTC: five fields (minute hour
	// day-of-month month day-of-week, "0 3 * * SUN"), six with seconds
	// first, a descriptor (@daily, @weekly, @every 6h), optionally
	// prefixed with CRON_TZ=Area/City.
	Schedule string `yaml:"schedule" json:"schedule"`
	// Point: latest (default), latest-per-machine, latest-app or
	// latest-consistent. A time or point ID would pin every drill to one
	// old point.
	Point string `yaml:"point,omitempty" json:"point,omitempty"`
	// Checks run after the plan's own actions, against the test copy
	// (script or wait-health); one failing fails the drill.
	Checks []Action `yaml:"checks,omitempty" json:"checks,omitempty"`
	// Keep is how long the test copy stays up after the checks passed,
	// before the cleanup (default 0: at once).
	Keep time.Duration `yaml:"keep,omitempty" json:"keep,omitempty"`
}

// cronParser takes five fields or six with seconds, and descriptors.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a drill schedule (Drill.Schedule).
func ParseSchedule(s string) (cron.Schedule, error) {
	return cronParser.Parse(s)
}

// drillPoints are the point choices a scheduled drill may take.
var drillPoints = []string{"latest", "latest-per-machine", "latest-app", "latest-consistent"}

func (c *Config) checkDrill(k *checker, f string, d *Drill) {
	if d.Schedule == "" {
		k.fail(f+".schedule", "missing (cron, e.g. \"0 3 * * SUN\" for Sundays 03:00 UTC)")
	} else if _, err := ParseSchedule(d.Schedule); err != nil {
		k.fail(f+".schedule", "%q: %v", d.Schedule, err)
	}
	if d.Point != "" && !slices.Contains(drillPoints, d.Point) {
		k.fail(f+".point", "%q: want one of %v", d.Point, drillPoints)
	}
	if d.Keep < 0 {
		k.fail(f+".keep", "must not be negative")
	}
	for i := range d.Checks {
		cf := fmt.Sprintf("%s.checks[%d]", f, i)
		if t := d.Checks[i].Type; t != ActionScript && t != ActionWaitHealth {
			k.fail(cf+".type", "%q: a drill check is script or wait-health", t)
			continue
		}
		c.checkAction(k, cf, &d.Checks[i])
	}
}
