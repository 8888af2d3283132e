package chart

import (
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// elements parses an SVG document (failing on malformed XML) and returns
// its elements by name with their attributes, and all its text.
func elements(t *testing.T, b []byte) (map[string][]map[string]string, string) {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(string(b)))
	out := map[string][]map[string]string{}
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, b)
		}
		switch x := tok.(type) {
		case xml.StartElement:
			attrs := map[string]string{}
			for _, a := range x.Attr {
				// encoding/xml takes a repeated attribute; browsers refuse
				// the whole document.
				if _, dup := attrs[a.Name.Local]; dup {
					t.Fatalf("<%s> repeats attribute %s:\n%s", x.Name.Local, a.Name.Local, b)
				}
				attrs[a.Name.Local] = a.Value
			}
			out[x.Name.Local] = append(out[x.Name.Local], attrs)
		case xml.CharData:
			text.Write(x)
			text.WriteString("\n")
		}
	}
	return out, text.String()
}

func TestRPO(t *testing.T) {
	from := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	to := from.Add(100 * time.Second)
	// A sawtooth: 10 s old at 0, grows to 50 s at 40, drops to 0, grows to 60 s.
	s := []Sample{{from, 10}, {from.Add(40 * time.Second), 50}, {from.Add(40 * time.Second), 0}, {to, 60}}
	els, text := elements(t, RPO("RPO of <db>", s, 30, from, to))
	pl := els["polyline"]
	if len(pl) != 1 || len(strings.Fields(pl[0]["points"])) != 4 {
		t.Fatalf("polyline: %v", pl)
	}
	pts := strings.Fields(pl[0]["points"])
	xy := func(p string) (float64, float64) {
		a, b, _ := strings.Cut(p, ",")
		x, _ := strconv.ParseFloat(a, 64)
		y, _ := strconv.ParseFloat(b, 64)
		return x, y
	}
	x0, y0 := xy(pts[0])
	x3, y3 := xy(pts[3])
	_, ydrop := xy(pts[2])
	if x0 != left || x3 != left+plotW || ydrop != top+plotH || !(y3 < y0) {
		t.Errorf("points %v: want the first at the left edge, the last at the right, the drop on the axis, 60 s above 10 s", pts)
	}
	// The scale tops at 60*1.05 = 63 s, so the target (30 s) sits at
	// 30/63 of the plot's height.
	var target map[string]string
	for _, l := range els["line"] {
		if l["class"] == "target" {
			target = l
		}
	}
	wantY := top + plotH - plotH*30/63
	if y, _ := strconv.ParseFloat(target["y1"], 64); target == nil || y-wantY > 0.1 || wantY-y > 0.1 {
		t.Errorf("target line %v, want y %.1f", target, wantY)
	}
	if !strings.Contains(text, "RPO of <db>") || !strings.Contains(text, "target 30 s") {
		t.Errorf("text: %q", text)
	}
	if _, text := elements(t, RPO("empty", nil, 0, from, to)); !strings.Contains(text, "no recovery point") {
		t.Errorf("empty chart says %q", text)
	}
}

func TestTimeline(t *testing.T) {
	start := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	at := func(s int) *time.Time { x := start.Add(time.Duration(s) * time.Second); return &x }
	bars := []Bar{{"network", "done", at(0), at(2)}, {"group 1: disks", "done", at(2), at(8)}, {"start & health", "failed", at(8), at(10)},
		{"finish", "pending", nil, nil}}
	els, text := elements(t, Timeline("job j1", bars, start, start.Add(10*time.Second)))
	var rects []map[string]string
	for _, r := range els["rect"] {
		if strings.HasPrefix(r["class"], "step") {
			rects = append(rects, r)
		}
	}
	if len(rects) != 3 {
		t.Fatalf("%d step bars, want 3 (the pending step has none)", len(rects))
	}
	w := func(r map[string]string) float64 { v, _ := strconv.ParseFloat(r["width"], 64); return v }
	if r := w(rects[1]) / w(rects[0]); r < 2.99 || r > 3.01 {
		t.Errorf("disks bar %.1f is not 3 times the network bar %.1f", w(rects[1]), w(rects[0]))
	}
	if rects[2]["fill"] != stateColor["failed"] || !strings.Contains(rects[2]["class"], "failed") {
		t.Errorf("failed step bar: %v", rects[2])
	}
	if !strings.Contains(text, "start & health") || !strings.Contains(text, "finish") {
		t.Errorf("labels: %q", text)
	}
}

func TestSiteMap(t *testing.T) {
	sites := []Site{{Name: "primary", Label: "onprem", Machines: []string{"shop/db", "shop/web"}}, {Name: "recovery", Label: "cloud"},
		{Name: "test", Label: "copies", Machines: []string{"shop/db"}}}
	els, text := elements(t, SiteMap("now", sites, []DNS{{Profile: "shop.example", Answers: []string{"10.1.0.20"}, Site: "primary"},
		{Profile: "crm.example", Err: "timeout"}}))
	if n := len(els["g"]); n != 3 {
		t.Fatalf("%d site boxes", n)
	}
	for _, want := range []string{"PRIMARY  onprem", "● shop/web", "nothing runs here", "DNS shop.example → 10.1.0.20", "crm.example → unknown: timeout"} {
		if !strings.Contains(text, want) {
			t.Errorf("site map lacks %q:\n%s", want, text)
		}
	}
	if n := len(els["path"]); n != 2 { // one arrow (the known site) and the marker's head
		t.Errorf("%d paths, want the arrow to the primary and its head", n)
	}
}
