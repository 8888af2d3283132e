package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/haven-dr/haven/internal/demo/rig"
	"time"
)

// ScenarioOptions of `haven demo`.
type ScenarioOptions struct {
	Dir  string // work directory (default: a new /var/tmp/hvdemo…)
	Keep bool   // leave everything running; print how to try and tear down
	// Planned: protect, then only a planned failover under customer
	// load (the benchmark of bench/planned), instead of the story.
	Planned bool
	Out     io.Writer
}

// Preflight names what is missing before anything is created.
func Preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("haven demo builds network namespaces, loop devices and mounts: run it as root (sudo)")
	}
	if _, err := postgresBin(); err != nil {
		return err
	}
	if _, err := exec.LookPath("psql"); err != nil {
		return errors.New("psql not found: apt-get install postgresql-client (the database's CHECKPOINT hook)")
	}
	need := map[string]string{"unbound": "unbound", "mkfs.xfs": "xfsprogs", "mkfs.ext4": "e2fsprogs", "ip": "iproute2", "losetup": "util-linux"}
	for tool, pkg := range need {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: apt-get install %s", tool, pkg)
		}
	}
	return nil
}

// scenario is one run of the seed's story.
type scenario struct {
	*site
	ctx  context.Context
	cust *customers
	rep  Report
	imgs Images
	// keptLogs: where the logs go when the demo fails (its directory
	// is removed).
	keptLogs string
	failed   bool
	// plannedOnly: the --planned run, whose customers are many.
	plannedOnly bool
	t0          time.Time
	stepAt      time.Time
}

// RunScenario runs the whole story and returns its report. On any error or
// cancellation everything is removed; with Keep it is left running and a
// teardown script is written.
func RunScenario(ctx context.Context, opt ScenarioOptions) (rep *Report, err error) {
	if err := Preflight(); err != nil {
		return nil, err
	}
	s := &scenario{ctx: ctx, t0: time.Now()}
	s.site = &site{Rig: rig.New(rig.Options{Out: opt.Out, Env: os.Environ()})}
	defer func() {
		if s.cust != nil {
			s.cust.stop()
		}
		if err == nil && opt.Keep {
			return
		}
		s.failed = err != nil
		s.Say("\n-- removing everything the demo made")
		s.Close()
		if s.failed && s.LogDir != "" {
			s.Say("   logs kept in %s", s.keptLogs)
		}
	}()
	s.step("images")
	if s.imgs, err = BuildImages(s.Say); err != nil {
		return nil, err
	}
	if err := s.setup(opt.Dir); err != nil {
		return nil, err
	}
	story := []func() error{s.build, s.protect, s.testFailover, s.disaster, s.unplanned, s.reprotectFailback}
	if opt.Planned {
		s.plannedOnly = true
		story = []func() error{s.build, s.protect, s.planned}
	}
	for _, f := range story {
		if err := f(); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	s.step("")
	s.rep.TotalSecs = time.Since(s.t0).Seconds()
	s.rep.Dir = s.Dir
	s.rep.Where = Where{Customers: s.custNS, Internet: s.Inet, Primary: s.PrimNS, Resolver: resolverAddr, ServerState: s.server.State,
		OrdersLog: filepath.Join(s.Dir, "orders.log")}
	if opt.Keep {
		s.keepHelp()
	}
	return &s.rep, nil
}

// step closes the previous step's timer and opens the next.
func (s *scenario) step(name string) {
	now := time.Now()
	if n := len(s.rep.Steps); n > 0 && s.rep.Steps[n-1].Seconds == 0 {
		s.rep.Steps[n-1].Seconds = now.Sub(s.stepAt).Seconds()
	}
	if name != "" {
		s.rep.Steps = append(s.rep.Steps, Step{Name: name})
		if s.site != nil {
			s.Say("\n== %s", name)
		}
	}
	s.stepAt = now
}
