// Package chart draws the console's pictures as SVG documents on the
// server: no script, no library, nothing fetched by the browser. Each
// function takes plain values (no server types) and returns a whole SVG
// document; text is escaped.
package chart

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

const (
	width, height    = 760.0, 220.0
	left, right      = 56.0, 16.0
	top, bottom      = 16.0, 36.0
	plotW, plotH     = width - left - right, height - top - bottom
	colorLine        = "#2766c4"
	colorTarget      = "#b3261e"
	colorGrid        = "#d5d9e0"
	colorText        = "#1d2430"
	fontAttrs        = `font-family="system-ui, sans-serif" font-size="11"`
	timeLayoutDay    = "15:04"
	timeLayoutLonger = "Jan 2"
)

func esc(s string) string { return html.EscapeString(s) }

type doc struct {
	b bytes.Buffer
}

func newDoc(w, h float64, title string) *doc {
	d := &doc{}
	fmt.Fprintf(&d.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img"><title>%s</title>`,
		w, h, w, h, esc(title))
	fmt.Fprintf(&d.b, `<rect width="%.0f" height="%.0f" fill="#fff"/>`, w, h)
	return d
}

// text writes s at (x, y); extra attributes may set fill (default the
// text color), never twice: a repeated attribute makes the document
// malformed, and a browser then draws nothing.
func (d *doc) text(x, y float64, anchor, s string, extra ...string) {
	a := ""
	fill := false
	for _, e := range extra {
		a += " " + e
		fill = fill || strings.HasPrefix(e, "fill=")
	}
	if !fill {
		a += ` fill="` + colorText + `"`
	}
	fmt.Fprintf(&d.b, `<text x="%.1f" y="%.1f" text-anchor="%s" %s%s>%s</text>`, x, y, anchor, fontAttrs, a, esc(s))
}

func (d *doc) line(x1, y1, x2, y2 float64, color string, extra string) {
	fmt.Fprintf(&d.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" %s/>`, x1, y1, x2, y2, color, extra)
}

func (d *doc) bytes() []byte {
	d.b.WriteString("</svg>\n")
	return d.b.Bytes()
}

// Sample is one instant of a series.
type Sample struct {
	T time.Time
	V float64
}

// RPO draws a machine's RPO over [from, to] as the sawtooth its points
// make (samples: the RPO at each instant it changes slope, in order),
// with its target as a dashed line (0: none). Time runs left to right.
func RPO(title string, samples []Sample, target float64, from, to time.Time) []byte {
	d := newDoc(width, height, title)
	vmax := target * 1.2
	for _, s := range samples {
		vmax = math.Max(vmax, s.V*1.05)
	}
	if vmax <= 0 {
		vmax = 60
	}
	x := func(t time.Time) float64 {
		return left + plotW*float64(t.Sub(from))/float64(max(to.Sub(from), time.Second))
	}
	y := func(v float64) float64 { return top + plotH - plotH*v/vmax }
	d.axes(from, to, vmax, y)
	if len(samples) > 0 {
		d.b.WriteString(`<polyline class="rpo" fill="none" stroke="` + colorLine + `" stroke-width="1.5" points="`)
		for _, s := range samples {
			fmt.Fprintf(&d.b, "%.1f,%.1f ", x(s.T), y(s.V))
		}
		d.b.WriteString(`"/>`)
	} else {
		d.text(left+plotW/2, top+plotH/2, "middle", "no recovery point recorded in this time")
	}
	if target > 0 {
		d.line(left, y(target), left+plotW, y(target), colorTarget, `class="target" stroke-dasharray="6 4"`)
		d.text(left+plotW-4, y(target)-4, "end", "target "+secs(target), `fill="`+colorTarget+`"`)
	}
	return d.bytes()
}

// axes draws the frame, three value labels and time labels.
func (d *doc) axes(from, to time.Time, vmax float64, y func(float64) float64) {
	d.line(left, top, left, top+plotH, colorText, "")
	d.line(left, top+plotH, left+plotW, top+plotH, colorText, "")
	for _, v := range []float64{0, vmax / 2, vmax} {
		d.line(left, y(v), left+plotW, y(v), colorGrid, `stroke-dasharray="2 3"`)
		d.text(left-4, y(v)+4, "end", secs(v))
	}
	layout := timeLayoutDay
	if to.Sub(from) > 48*time.Hour {
		layout = timeLayoutLonger
	}
	for i := 0; i <= 4; i++ {
		t := from.Add(time.Duration(float64(to.Sub(from)) * float64(i) / 4))
		d.text(left+plotW*float64(i)/4, top+plotH+16, anchorAt(i), t.UTC().Format(layout))
	}
	d.text(left+plotW, top+plotH+30, "end", "UTC")
}

// anchorAt keeps the last of five axis labels inside the picture.
func anchorAt(i int) string {
	if i == 4 {
		return "end"
	}
	return "middle"
}

// secs writes a duration in seconds the way the console does.
func secs(s float64) string {
	switch {
	case s < 120:
		return fmt.Sprintf("%.0f s", s)
	case s < 7200:
		return fmt.Sprintf("%.0f min", s/60)
	}
	return fmt.Sprintf("%.1f h", s/3600)
}
