package chart

import (
	"fmt"
	"time"
)

// Bar is one step of a job on the timeline.
type Bar struct {
	Name  string
	State string // done, failed, running, pending, skipped
	Start *time.Time
	End   *time.Time
}

var stateColor = map[string]string{
	"done": "#17703a", "failed": "#b3261e", "running": "#2766c4", "skipped": "#9aa3ad", "pending": "#d5d9e0",
}

// Timeline draws a job's steps as bars on one time axis from the job's
// start to its end (or now for a running job), one row per step; a step
// not started has no bar.
func Timeline(title string, bars []Bar, start, end time.Time) []byte {
	const row, labelW = 20.0, 300.0
	h := top + bottom + row*float64(max(len(bars), 1))
	d := newDoc(width+labelW-left, h, title)
	span := max(end.Sub(start), time.Millisecond)
	plotLeft, plotRight := labelW, width+labelW-left-right
	x := func(t time.Time) float64 {
		return plotLeft + (plotRight-plotLeft)*float64(t.Sub(start))/float64(span)
	}
	for i, b := range bars {
		y := top + row*float64(i)
		name := b.Name
		if len(name) > 48 {
			name = name[:47] + "…"
		}
		d.text(plotLeft-6, y+row*0.7, "end", name)
		if b.Start == nil {
			continue
		}
		e := end
		if b.End != nil {
			e = *b.End
		}
		x0, x1 := x(*b.Start), x(e)
		color := stateColor[b.State]
		if color == "" {
			color = stateColor["pending"]
		}
		fmt.Fprintf(&d.b, `<rect class="step %s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s, %s</title></rect>`,
			esc(b.State), x0, y+3, max(x1-x0, 1.5), row-6, color, esc(b.Name), esc(b.State), e.Sub(*b.Start).Round(time.Millisecond))
	}
	axisY := top + row*float64(max(len(bars), 1))
	d.line(plotLeft, axisY, plotRight, axisY, colorText, "")
	for i := 0; i <= 4; i++ {
		off := time.Duration(float64(span) * float64(i) / 4)
		d.text(plotLeft+(plotRight-plotLeft)*float64(i)/4, axisY+16, anchorAt(i), "+"+off.Round(time.Millisecond).String())
	}
	return d.bytes()
}
