package activities

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// setTargets records a slot in the spec's Prometheus file_sd file (no-op
// without one; Kubernetes Pods carry their labels already). version ""
// removes the slot.
func setTargets(s *spec.Service, slot rollout.Slot, version string) error {
	p := s.Rollout.Analysis.Prometheus
	if p == nil || p.TargetsFile == "" || s.Platform == spec.PlatformKubernetes {
		return nil
	}
	var addrs []string
	if version != "" {
		addrs = s.SlotAddrs(string(slot))
	}
	if err := analysis.SetTargets(p.TargetsFile, s.Name, s.Environment, slot, version, addrs, s.Rollout.Analysis.MetricsPath); err != nil {
		return fmt.Errorf("prometheus targets: %w", err)
	}
	return nil
}

// analyzePrometheus runs each metric's queries on the step so far.
func (a *Activities) analyzePrometheus(ctx context.Context, s *spec.Service, in AnalyzeInput, res *rollout.CheckResult) error {
	an := s.Rollout.Analysis
	p, err := analysis.NewPrometheus(an.Prometheus)
	if err != nil {
		return badInput(err)
	}
	res.Source = "prometheus"
	vars := analysis.Vars{Service: s.Name, Environment: s.Environment, Slot: in.Slot, BaselineSlot: in.Slot.Other(),
		Version: in.Version, LiveVersion: in.LiveVersion, Interval: an.Interval.D(), LiveIdle: in.Weight >= 100}
	now := time.Now()
	since := in.Since
	if since.IsZero() || now.Sub(since) > 24*time.Hour {
		since = now.Add(-an.Interval.D())
	}
	w := analysis.Window{Start: since, End: now, Step: an.Prometheus.Step.D()}
	var failed, unsure []string
	for _, m := range an.Metrics {
		activity.RecordHeartbeat(ctx, "querying "+m.Name)
		meas := analysis.Measure(ctx, p, m, vars, w)
		res.Measurements = append(res.Measurements, meas)
		switch meas.Decision {
		case rollout.Fail:
			failed = append(failed, meas.String())
		case rollout.Inconclusive, rollout.Error:
			unsure = append(unsure, meas.String())
		}
	}
	switch {
	case len(failed) > 0:
		res.Passed = false
		res.Detail = strings.Join(failed, "; ")
	case len(unsure) > 0:
		res.Inconclusive = true
		res.Detail = "inconclusive: " + strings.Join(unsure, "; ")
	default:
		res.Detail = fmt.Sprintf("%d metric(s) pass", len(res.Measurements))
	}
	return nil
}

// WatchInput is the step to watch: the slot, the counters when it began,
// and how long to watch at most.
type WatchInput struct {
	Spec     *spec.Service                     `json:"spec,omitempty"` // nil: the run's own (see spec.go)
	Slot     rollout.Slot                      `json:"slot"`
	Baseline map[rollout.Slot]rollout.Counters `json:"baseline"`
	For      time.Duration                     `json:"for"`
}

// Watch reads the router's per-slot counters every poll during a step and
// runs the sequential test on them; it returns a failed result as soon as
// the test stops, or a passed one when the time is up. It heartbeats each
// poll, so a dead worker is noticed in seconds.
func (a *Activities) Watch(ctx context.Context, in WatchInput) (*rollout.CheckResult, error) {
	s, err := a.spec(ctx, in.Spec)
	if err != nil {
		return nil, err
	}
	r, err := a.router(ctx, s)
	if err != nil {
		return nil, err
	}
	e := s.Rollout.Analysis.EarlyStop
	test := analysis.SPRT{Ratio: e.Ratio, Alpha: e.FalseAlarmRate, MinErrorRate: e.MinErrorRate}
	last := in.Baseline
	res := &rollout.CheckResult{Name: "early-stop", Slot: in.Slot, Passed: true}
	tick := time.NewTicker(e.Poll.D())
	defer tick.Stop()
	end := time.After(in.For)
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-end:
			res.At, res.Detail, res.Source = time.Now(), "no early stop: "+test.String(), string(s.Router.Kind)+"-stats"
			return res, nil
		case <-tick.C:
		}
		now, source := a.counters(ctx, s, r)
		c, okC := now[in.Slot]
		l, okL := now[in.Slot.Other()]
		if !okC || !okL {
			activity.RecordHeartbeat(ctx, "no per-slot counters from "+source)
			continue
		}
		lc, ll := last[in.Slot], last[in.Slot.Other()]
		if c.Requests < lc.Requests || l.Requests < ll.Requests {
			lc, ll = rollout.Counters{}, rollout.Counters{} // the router restarted: counting from zero
		}
		stop := test.Observe(analysis.Count{Requests: c.Requests - lc.Requests, Errors: c.Errors - lc.Errors},
			analysis.Count{Requests: l.Requests - ll.Requests, Errors: l.Errors - ll.Errors})
		last = now
		activity.RecordHeartbeat(ctx, test.String())
		if stop {
			res.Passed, res.At, res.Source = false, time.Now(), source
			res.Detail = fmt.Sprintf("early stop: the new slot errs more than the live one (sequential test, false-alarm rate %g): %s", e.FalseAlarmRate, test.String())
			return res, nil
		}
	}
}
