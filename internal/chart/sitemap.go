package chart

import (
	"fmt"
	"strings"
)

// Site is one box of the site map: a site and the machines running
// there now (each "plan/machine").
type Site struct {
	Name     string // primary, recovery, test
	Label    string // the site's name in the config, or a note
	Machines []string
}

// DNS is what a traffic profile answers now.
type DNS struct {
	Profile string
	Answers []string // addresses; empty with Err set when unknown
	Site    string   // the site (Site.Name) the answers point to, if known
	Err     string
}

// SiteMap draws the sites side by side with the machines running at each,
// and below them each DNS profile with its answers and an arrow to the
// site they lead to.
func SiteMap(title string, sites []Site, dns []DNS) []byte {
	const boxW, gap, lineH = 220.0, 30.0, 16.0
	rows := 1
	for _, s := range sites {
		rows = max(rows, len(s.Machines))
	}
	boxH := 40 + lineH*float64(rows)
	w := 20 + float64(len(sites))*(boxW+gap)
	h := 20 + boxH + 40 + float64(max(len(dns), 1))*(lineH+8) + 20
	d := newDoc(max(w, 400), h, title)
	center := map[string]float64{}
	for i, s := range sites {
		x := 20 + float64(i)*(boxW+gap)
		center[s.Name] = x + boxW/2
		fmt.Fprintf(&d.b, `<g class="site" data-site="%s"><rect x="%.1f" y="20" width="%.1f" height="%.1f" rx="6" fill="#eef3fb" stroke="#2766c4"/>`,
			esc(s.Name), x, boxW, boxH)
		d.text(x+10, 38, "start", strings.ToUpper(s.Name)+"  "+s.Label, `font-weight="bold"`)
		if len(s.Machines) == 0 {
			d.text(x+10, 38+lineH, "start", "nothing runs here", `fill="#667"`)
		}
		for j, m := range s.Machines {
			d.text(x+10, 38+lineH*float64(j+1), "start", "● "+m, `class="machine"`)
		}
		d.b.WriteString("</g>")
	}
	y := 20 + boxH + 40
	if len(dns) == 0 {
		d.text(20, y, "start", "no DNS profile in the plans", `fill="#667"`)
	}
	for _, p := range dns {
		ans := strings.Join(p.Answers, ", ")
		if p.Err != "" {
			ans = "unknown: " + p.Err
		}
		d.text(20, y, "start", "DNS "+p.Profile+" → "+ans, `class="dns"`)
		if c, ok := center[p.Site]; ok {
			fmt.Fprintf(&d.b, `<path d="M %.1f %.1f L %.1f %.1f" stroke="#17703a" stroke-width="2" fill="none" marker-end="url(#arrow)"/>`,
				min(c, 20+7*float64(len(p.Profile)+len(ans)+8)), y-12, c, 20+boxH+2)
		}
		y += lineH + 8
	}
	d.b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#17703a"/></marker></defs>`)
	return d.bytes()
}
