package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
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

// Render fills in a query for the new slot, or for the live one.
func Render(query string, v Vars, live bool) string {
	slot, other, version := v.Slot, v.BaselineSlot, v.Version
	if live {
		slot, other, version = v.BaselineSlot, v.Slot, v.LiveVersion
	}
	vals := map[string]string{"service": v.Service, "environment": v.Environment, "slot": string(slot),
		"baseline_slot": string(other), "version": version, "interval": promDuration(v.Interval)}
	return spec.QueryVarRe.ReplaceAllStringFunc(query, func(m string) string {
		name := strings.TrimSpace(m[2 : len(m)-2])
		if val, ok := vals[name]; ok {
			// values land inside label matchers' quotes: escaped, so
			// none can close the string and rewrite the query
			return spec.PromQLString(val)
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

// Measure runs one metric's queries and judges the answer.
func Measure(ctx context.Context, p *Prometheus, m spec.Metric, v Vars, w Window) rollout.Measurement {
	r := rollout.Measurement{Metric: m.Name, Query: Render(m.Query, v, false)}
	if m.Compare != nil || m.Judge != nil {
		r.BaselineQuery = Render(m.Query, v, true)
	}
	r.Threshold = threshold(m)
	const idle = "not compared: the live slot takes no traffic at this step"
	if m.Judge != nil {
		if v.LiveIdle {
			return decided(r, rollout.Pass, idle)
		}
		judge(ctx, p, m, w, &r)
		return r
	}
	val, why, err := single(ctx, p, r.Query, w.End)
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
		base, why, err := single(ctx, p, r.BaselineQuery, w.End)
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

// single runs an instant query that must give one finite number; why says
// what was wrong with an answer that did not.
func single(ctx context.Context, p *Prometheus, q string, at time.Time) (v float64, why string, err error) {
	s, err := p.Instant(ctx, q, at)
	if err != nil {
		return 0, "", err
	}
	if why := notOne(s); why != "" {
		return 0, why, nil
	}
	if len(s[0].Values) != 1 || math.IsNaN(s[0].Values[0]) || math.IsInf(s[0].Values[0], 0) {
		return 0, "the query returned NaN or no value (no traffic in the interval?)", nil
	}
	return s[0].Values[0], "", nil
}

// notOne says what is wrong with an answer that is not exactly one series.
func notOne(s []Series) string {
	switch {
	case len(s) == 0:
		return "the query returned no series"
	case len(s) > 1:
		return fmt.Sprintf("the query returned %d series, not one (aggregate it, e.g. with sum)", len(s))
	}
	return ""
}

// judge compares the two slots' series over the step with Mann-Whitney.
func judge(ctx context.Context, p *Prometheus, m spec.Metric, w Window, r *rollout.Measurement) {
	j := m.Judge
	x, why, err := series(ctx, p, r.Query, w)
	if err != nil {
		*r = errored(*r, err)
		return
	}
	y, whyLive, err := series(ctx, p, r.BaselineQuery, w)
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

// series runs a range query that must give one series; NaNs are dropped.
func series(ctx context.Context, p *Prometheus, q string, w Window) ([]float64, string, error) {
	s, err := p.Range(ctx, q, w.Start, w.End, w.Step)
	if err != nil {
		return nil, "", err
	}
	if why := notOne(s); why != "" {
		return nil, why, nil
	}
	var v []float64
	for _, f := range s[0].Values {
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			v = append(v, f)
		}
	}
	if len(v) < 3 {
		return nil, fmt.Sprintf("only %d values in the step so far (need 3)", len(v)), nil
	}
	return v, "", nil
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
