package dashboard

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/workflows"
)

// Charts are SVG drawn here, in Go: nothing to build, nothing from a CDN,
// and the numbers are in the page (each point has a <title>) for a screen
// reader or a test to read. Colours come from the stylesheet's classes.

const (
	chartW, chartH = 640.0, 180.0
	padL, padR     = 52.0, 12.0
	padT, padB     = 12.0, 26.0
)

// plot maps times and values into the chart's box.
type plot struct {
	t0, t1 time.Time
	lo, hi float64
}

func (p plot) x(t time.Time) float64 {
	span := p.t1.Sub(p.t0)
	if span <= 0 {
		return padL
	}
	return padL + (chartW-padL-padR)*float64(t.Sub(p.t0))/float64(span)
}

func (p plot) y(v float64) float64 {
	if p.hi <= p.lo {
		return chartH - padB
	}
	return chartH - padB - (chartH-padT-padB)*(v-p.lo)/(p.hi-p.lo)
}

// frame draws the axes, the y labels and the first and last times.
func (p plot) frame(b *strings.Builder, format func(float64) string) {
	fmt.Fprintf(b, `<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, padL, chartH-padB, chartW-padR, chartH-padB)
	fmt.Fprintf(b, `<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, padL, padT, padL, chartH-padB)
	for _, v := range []float64{p.lo, (p.lo + p.hi) / 2, p.hi} {
		y := p.y(v)
		fmt.Fprintf(b, `<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, padL, y, chartW-padR, y)
		fmt.Fprintf(b, `<text class="label" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, padL-6, y+4, template.HTMLEscapeString(format(v)))
	}
	fmt.Fprintf(b, `<text class="label" x="%.1f" y="%.1f">%s</text>`, padL, chartH-6, p.t0.Local().Format("15:04:05"))
	fmt.Fprintf(b, `<text class="label" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, chartW-padR, chartH-6, p.t1.Local().Format("15:04:05"))
}

func open(b *strings.Builder, class, label string) {
	fmt.Fprintf(b, `<svg class="chart %s" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s"><title>%s</title>`,
		class, chartW, chartH, template.HTMLEscapeString(label), template.HTMLEscapeString(label))
}

// timelineChart draws the new version's share of traffic over the
// rollout, a step at each weight change, with the steps' targets as
// gridlines' labels.
func timelineChart(st *workflows.Status) template.HTML {
	if len(st.Timeline) == 0 || st.Target == rollout.None {
		return ""
	}
	end := st.UpdatedAt
	if last := st.Timeline[len(st.Timeline)-1].At; last.After(end) {
		end = last
	}
	if !end.After(st.StartedAt) {
		end = st.StartedAt.Add(time.Second)
	}
	p := plot{t0: st.StartedAt, t1: end, lo: 0, hi: 100}
	var b strings.Builder
	open(&b, "timeline", fmt.Sprintf("%s's share of traffic over the rollout: %d weight changes", st.Version, len(st.Timeline)))
	p.frame(&b, func(v float64) string { return fmt.Sprintf("%.0f%%", v) })
	var path strings.Builder
	prevY := p.y(0)
	fmt.Fprintf(&path, "M%.1f %.1f", p.x(st.StartedAt), prevY)
	for _, c := range st.Timeline {
		x, y := p.x(c.At), p.y(float64(c.Weights.Of(st.Target)))
		fmt.Fprintf(&path, " L%.1f %.1f L%.1f %.1f", x, prevY, x, y)
		prevY = y
	}
	fmt.Fprintf(&path, " L%.1f %.1f", p.x(end), prevY)
	fmt.Fprintf(&b, `<path class="line new" d="%s"/>`, path.String())
	for _, c := range st.Timeline {
		w := c.Weights.Of(st.Target)
		fmt.Fprintf(&b, `<circle class="pt new" cx="%.1f" cy="%.1f" r="3.5"><title>%s: %s %d%% (%s)</title></circle>`,
			p.x(c.At), p.y(float64(w)), c.At.Local().Format("15:04:05.000"), template.HTMLEscapeString(st.Version), w, c.Weights)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built here from numbers and escaped text
}

// chart is one metric's measurements over the rollout.
type chart struct {
	Metric    string
	SVG       template.HTML
	Points    int // measurements with a value, drawn
	Threshold string
	Failed    int
}

// metricCharts draws, per metric, the new and the live slot's values at
// each measurement, the limit the new one was held to (dashed), and each
// failed measurement marked with a cross as well as its colour.
func metricCharts(ms []workflows.Measured) []chart {
	var names []string
	for _, m := range ms {
		if !slices.Contains(names, m.Metric) {
			names = append(names, m.Metric)
		}
	}
	var out []chart
	for _, n := range names {
		var pts []workflows.Measured
		for _, m := range ms {
			if m.Metric == n {
				pts = append(pts, m)
			}
		}
		out = append(out, metricChart(n, pts))
	}
	return out
}

func metricChart(metric string, pts []workflows.Measured) chart {
	c := chart{Metric: metric, Threshold: pts[len(pts)-1].Threshold}
	p := plot{t0: pts[0].At, t1: pts[len(pts)-1].At, lo: math.Inf(1), hi: math.Inf(-1)}
	if !p.t1.After(p.t0) {
		p.t0, p.t1 = p.t0.Add(-time.Second), p.t1.Add(time.Second)
	}
	for _, m := range pts {
		for _, v := range []*float64{m.Value, m.Baseline, m.Limit} {
			if v != nil {
				p.lo, p.hi = math.Min(p.lo, *v), math.Max(p.hi, *v)
			}
		}
	}
	if math.IsInf(p.lo, 0) {
		p.lo, p.hi = 0, 1
	}
	if p.lo > 0 && p.lo < p.hi/2 {
		p.lo = 0
	}
	if pad := (p.hi - p.lo) * 0.1; pad > 0 {
		p.hi += pad
	} else {
		p.lo, p.hi = p.lo-1, p.hi+1
	}
	var b strings.Builder
	open(&b, "metric", fmt.Sprintf("%s: the new slot's value (and the live slot's) at each of %d measurements, held to %s", metric, len(pts), c.Threshold))
	p.frame(&b, func(v float64) string { return fmt.Sprintf("%.3g", v) })
	// a line through the points; the limit as steps across the whole chart
	series := func(class string, get func(workflows.Measured) *float64) {
		var d strings.Builder
		step := class == "limit"
		last := 0.0
		for _, m := range pts {
			if v := get(m); v != nil {
				x, y := p.x(m.At), p.y(*v)
				switch {
				case d.Len() == 0 && step:
					fmt.Fprintf(&d, "M%.1f %.1f L%.1f %.1f ", padL, y, x, y)
				case d.Len() == 0:
					fmt.Fprintf(&d, "M%.1f %.1f ", x, y)
				case step:
					fmt.Fprintf(&d, "L%.1f %.1f L%.1f %.1f ", x, last, x, y)
				default:
					fmt.Fprintf(&d, "L%.1f %.1f ", x, y)
				}
				last = y
			}
		}
		if step && d.Len() > 0 {
			fmt.Fprintf(&d, "L%.1f %.1f", chartW-padR, last)
		}
		if d.Len() > 0 {
			fmt.Fprintf(&b, `<path class="line %s" d="%s"/>`, class, strings.TrimSpace(d.String()))
		}
	}
	series("limit", func(m workflows.Measured) *float64 { return m.Limit })
	series("live", func(m workflows.Measured) *float64 { return m.Baseline })
	series("new", func(m workflows.Measured) *float64 { return m.Value })
	for _, m := range pts {
		at := m.At.Local().Format("15:04:05")
		if m.Baseline != nil {
			fmt.Fprintf(&b, `<circle class="pt live" cx="%.1f" cy="%.1f" r="3"><title>%s at %d%%: live %.4g</title></circle>`, p.x(m.At), p.y(*m.Baseline), at, m.Weight, *m.Baseline)
		}
		if m.Value == nil {
			continue
		}
		c.Points++
		x, y := p.x(m.At), p.y(*m.Value)
		title := template.HTMLEscapeString(fmt.Sprintf("%s at %d%%: new %.4g, %s: %s", at, m.Weight, *m.Value, m.Decision, m.Reason))
		fmt.Fprintf(&b, `<circle class="pt new decision-%s" cx="%.1f" cy="%.1f" r="4"><title>%s</title></circle>`, template.HTMLEscapeString(m.Decision), x, y, title)
		if m.Decision == rollout.Fail {
			c.Failed++
			fmt.Fprintf(&b, `<path class="cross" d="M%.1f %.1f l8 8 m0 -8 l-8 8"/>`, x-4, y-4)
		}
	}
	b.WriteString(`</svg>`)
	c.SVG = template.HTML(b.String()) //nolint:gosec // built here from numbers and escaped text
	return c
}

// bar is one bar of a small chart.
type bar struct {
	Label string
	Value float64
	Class string
}

// bars draws a small horizontal bar chart, scaled to scale (0: the sum of
// the values, for shares of a whole). Durations are in seconds.
func bars(bs []bar, scale float64) template.HTML {
	total := 0.0
	for _, x := range bs {
		total += x.Value
	}
	if scale <= 0 {
		scale = total
	}
	const w, rowH, labelW = 220.0, 16.0, 78.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="bars" viewBox="0 0 %.0f %.0f" role="img" aria-label="`, w+60, rowH*float64(len(bs)))
	var words []string
	for _, x := range bs {
		words = append(words, fmt.Sprintf("%s %s", x.Label, barValue(x.Value, scale == total)))
	}
	b.WriteString(template.HTMLEscapeString(strings.Join(words, ", ")) + `">`)
	for i, x := range bs {
		y := rowH * float64(i)
		bw := 0.0
		if scale > 0 {
			bw = (w - labelW) * x.Value / scale
		}
		fmt.Fprintf(&b, `<text class="label" x="0" y="%.1f">%s</text>`, y+12, template.HTMLEscapeString(x.Label))
		fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x.Class, labelW, y+3, bw, rowH-6)
		fmt.Fprintf(&b, `<text class="label" x="%.1f" y="%.1f">%s</text>`, labelW+bw+4, y+12, barValue(x.Value, scale == total))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built here from numbers and escaped text
}

// barValue writes a count (shares of a whole) or a duration in seconds.
func barValue(v float64, count bool) string {
	if count {
		return fmt.Sprintf("%.0f", v)
	}
	return time.Duration(v * float64(time.Second)).Round(time.Millisecond).String()
}
