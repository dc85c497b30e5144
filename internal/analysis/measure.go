package analysis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Vars are the values a query's {{variables}} take for the new slot; the
// live slot's query swaps slot and baseline_slot, and takes the live version.
type Vars struct {
	Service, Environment string
	Slot, BaselineSlot   rollout.Slot
	Version, LiveVersion string
	Interval             time.Duration
	// LiveIdle: the live slot takes no traffic at this step (the new one has
	// 100 %), so there is nothing to compare with.
	LiveIdle bool
}

// Render fills in a PromQL query for the new slot, or for the live one.
func Render(query string, v Vars, live bool) string {
	return render(query, v, live, spec.PromQLString)
}

// render fills in a query's variables, each value escaped for where it lands.
func render(query string, v Vars, live bool, esc func(string) string) string {
	slot, other, version := v.Slot, v.BaselineSlot, v.Version
	if live {
		slot, other, version = v.BaselineSlot, v.Slot, v.LiveVersion
	}
	vals := map[string]string{"service": v.Service, "environment": v.Environment, "slot": string(slot),
		"baseline_slot": string(other), "version": version, "interval": promDuration(v.Interval)}
	return spec.QueryVarRe.ReplaceAllStringFunc(query, func(m string) string {
		name := strings.TrimSpace(m[2 : len(m)-2])
		if val, ok := vals[name]; ok {
			// values land inside label matchers' quotes or a URL's
			// query: escaped, so none can close it and rewrite the query
			return esc(val)
		}
		return m
	})
}

// promDuration writes a duration as PromQL reads it (whole seconds, else ms).
func promDuration(d time.Duration) string {
	if d <= 0 {
		d = time.Minute
	}
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// Window is the step so far: what a judge's range queries cover.
type Window struct {
	Start, End time.Time
	Step       time.Duration
}

// Measure asks a metric's source and judges the answer; every source is
// judged by this one function.
func Measure(ctx context.Context, src Source, m spec.Metric, v Vars, w Window) rollout.Measurement {
	text, esc := m.Query, spec.PromQLString
	if m.Web != nil {
		text, esc = m.Web.URL, url.QueryEscape
	}
	r := rollout.Measurement{Metric: m.Name, Source: src.Name(), Query: render(text, v, false, esc)}
	if m.Compare != nil || m.Judge != nil {
		r.BaselineQuery = render(text, v, true, esc)
	}
	q := Query{Text: r.Query, Slot: v.Slot, At: w.End}
	live := Query{Text: r.BaselineQuery, Slot: v.BaselineSlot, At: w.End}
	r.Threshold = threshold(m)
	const idle = "not compared: the live slot takes no traffic at this step"
	if m.Judge != nil {
		if v.LiveIdle {
			return decided(r, rollout.Pass, idle)
		}
		judge(ctx, src, m, w, q, live, &r)
		return r
	}
	val, why, err := src.Value(ctx, q)
	switch {
	case err != nil:
		return errored(r, err)
	case why != "":
		return noData(r, m, why)
	}
	r.Value = &val
	if m.Max != nil {
		r.Limit = m.Max
	} else if m.Min != nil {
		r.Limit = m.Min
	}
	if m.Max != nil && val > *m.Max {
		return decided(r, rollout.Fail, fmt.Sprintf("%.4g is above the maximum %.4g", val, *m.Max))
	}
	if m.Min != nil && val < *m.Min {
		return decided(r, rollout.Fail, fmt.Sprintf("%.4g is below the minimum %.4g", val, *m.Min))
	}
	if c := m.Compare; c != nil && v.LiveIdle {
		if t := threshold(spec.Metric{Max: m.Max, Min: m.Min}); t != "" {
			return decided(r, rollout.Pass, "within "+t+"; "+idle)
		}
		return decided(r, rollout.Pass, idle)
	} else if c != nil {
		base, why, err := src.Value(ctx, live)
		switch {
		case err != nil:
			return errored(r, err)
		case why != "":
			return noData(r, m, "live slot: "+why)
		}
		r.Baseline = &base
		if c.MaxIncrease != nil && m.Max == nil {
			limit := base + *c.MaxIncrease
			r.Limit = &limit
		}
		if c.MaxIncrease != nil && val-base > *c.MaxIncrease {
			return decided(r, rollout.Fail, fmt.Sprintf("%.4g is %.4g above the live slot's %.4g (at most +%.4g allowed)", val, val-base, base, *c.MaxIncrease))
		}
		if c.MaxDecrease != nil && base-val > *c.MaxDecrease {
			return decided(r, rollout.Fail, fmt.Sprintf("%.4g is %.4g below the live slot's %.4g (at most −%.4g allowed)", val, base-val, base, *c.MaxDecrease))
		}
	}
	return decided(r, rollout.Pass, "within "+r.Threshold)
}

// judge compares the two slots' series over the step with Mann-Whitney.
func judge(ctx context.Context, src Source, m spec.Metric, w Window, q, live Query, r *rollout.Measurement) {
	j := m.Judge
	x, why, err := src.Series(ctx, q, w)
	if err != nil {
		*r = errored(*r, err)
		return
	}
	y, whyLive, err := src.Series(ctx, live, w)
	if err != nil {
		*r = errored(*r, err)
		return
	}
	r.Points = []int{len(x), len(y)}
	if why != "" || whyLive != "" {
		if why == "" {
			why = "live slot: " + whyLive
		}
		*r = noData(*r, m, why)
		return
	}
	mx, my := median(x), median(y)
	r.Value, r.Baseline = &mx, &my
	mw, err := MannWhitneyTest(x, y, j.Confidence)
	if errors.Is(err, ErrAllTied) {
		*r = decided(*r, rollout.Pass, "every value of both series is the same")
		return
	}
	ratio := mean(x) / mean(y)
	stats := fmt.Sprintf("shift %.4g (%.0f%% interval %.4g … %.4g), p = %.3g, mean ratio %.3g, %d vs %d points",
		mw.Estimate, 100*j.Confidence, mw.Low, mw.High, mw.P, ratio, len(x), len(y))
	up := j.Direction != "decrease" && mw.Low > 0
	down := j.Direction != "increase" && mw.High < 0
	switch {
	case up && ratio > j.AllowedIncrease:
		*r = decided(*r, rollout.Fail, "significantly higher than the live slot: "+stats)
	case down && ratio < j.AllowedDecrease:
		*r = decided(*r, rollout.Fail, "significantly lower than the live slot: "+stats)
	default:
		*r = decided(*r, rollout.Pass, "no significant change beyond the allowed: "+stats)
	}
}

func threshold(m spec.Metric) string {
	var t []string
	if m.Max != nil {
		t = append(t, fmt.Sprintf("≤ %.4g", *m.Max))
	}
	if m.Min != nil {
		t = append(t, fmt.Sprintf("≥ %.4g", *m.Min))
	}
	if c := m.Compare; c != nil {
		if c.MaxIncrease != nil {
			t = append(t, fmt.Sprintf("≤ live + %.4g", *c.MaxIncrease))
		}
		if c.MaxDecrease != nil {
			t = append(t, fmt.Sprintf("≥ live − %.4g", *c.MaxDecrease))
		}
	}
	if j := m.Judge; j != nil {
		t = append(t, fmt.Sprintf("mann-whitney at %.0f%%, %s, mean ratio allowed %.3g…%.3g", 100*j.Confidence, j.Direction, j.AllowedDecrease, j.AllowedIncrease))
	}
	return strings.Join(t, ", ")
}

func decided(r rollout.Measurement, decision, reason string) rollout.Measurement {
	r.Decision, r.Reason = decision, reason
	return r
}

func errored(r rollout.Measurement, err error) rollout.Measurement {
	return decided(r, rollout.Error, err.Error())
}

// noData decides as the metric's onNoData says, and says why.
func noData(r rollout.Measurement, m spec.Metric, why string) rollout.Measurement {
	return decided(r, m.OnNoData, "no data: "+why+" (onNoData: "+m.OnNoData+")")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return sortedMedian(s)
}

func mean(v []float64) float64 {
	t := 0.0
	for _, f := range v {
		t += f
	}
	return t / float64(len(v))
}
