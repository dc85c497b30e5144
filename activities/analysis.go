package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router"
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

// AnalyzeInput is the slot to judge and the counters at the step's start.
type AnalyzeInput struct {
	Spec     *spec.Service                     `json:"spec,omitempty"` // nil: the run's own (see spec.go)
	Slot     rollout.Slot                      `json:"slot"`
	Baseline map[rollout.Slot]rollout.Counters `json:"baseline,omitempty"`
	// Version and LiveVersion fill the queries' {{version}}; Since is when
	// the step began, the start of the judge's range queries.
	Version     string    `json:"version,omitempty"`
	LiveVersion string    `json:"liveVersion,omitempty"`
	Since       time.Time `json:"since,omitempty"`
	Weight      int       `json:"weight,omitempty"` // the slot's share of traffic
	// Guard judges a promoted slot by the guard's metrics (rollout.guard)
	// and returns the counters read, the next judgement's baseline.
	Guard bool `json:"guard,omitempty"`
	// Mirror, at a mirror step, is the mirror's counts as it began: the
	// step is judged on the shadow traffic (rollout.mirror's limits).
	Mirror *rollout.MirrorCounters `json:"mirror,omitempty"`
}

// Analyze judges the new slot on the traffic it served since the step
// began: each metric measured on its source and judged by
// analysis.Measure. A spec without metrics is judged on its error rate
// (and maxP95) from the best source there is: the router's counters, the
// slots' metricsPath, else a direct probe.
func (a *Activities) Analyze(ctx context.Context, in AnalyzeInput) (*rollout.CheckResult, error) {
	defer keepAlive(ctx)()
	svc, err := a.spec(ctx, in.Spec)
	if err != nil {
		return nil, err
	}
	r, err := a.router(ctx, svc)
	if err != nil {
		return nil, err
	}
	an := svc.Rollout.Analysis
	res := &rollout.CheckResult{Name: "analysis", Slot: in.Slot, At: time.Now(), Passed: true}
	defer func() { a.metrics(ctx, svc.Name, svc.Environment).check("analysis", res.Passed) }()

	src := &sources{a: a, svc: svc, r: r, base: in.Baseline}
	metrics := an.Metrics
	if in.Guard {
		metrics = svc.Rollout.GuardMetrics()
	}
	if in.Mirror != nil {
		t, ok := r.(router.Targeter)
		if !ok || svc.Rollout.Mirror == nil {
			return nil, badInput(fmt.Errorf("router kind %s cannot mirror", svc.Router.Kind))
		}
		now, err := t.Mirrored(ctx)
		if err != nil {
			return nil, classify(err)
		}
		src.mirror = &analysis.Mirror{Base: *in.Mirror, Now: now}
		metrics = mirrorMetrics(svc.Rollout.Mirror)
	}
	if len(metrics) == 0 {
		metrics = defaultMetrics(an, src.counterSource(ctx, in.Slot))
	}
	vars := analysis.Vars{Service: svc.Name, Environment: svc.Environment, Slot: in.Slot, BaselineSlot: in.Slot.Other(),
		Version: in.Version, LiveVersion: in.LiveVersion, Interval: an.Interval.D(), LiveIdle: in.Weight >= 100}
	now := time.Now()
	since := in.Since
	if since.IsZero() || now.Sub(since) > 24*time.Hour {
		since = now.Add(-an.Interval.D())
	}
	w := analysis.Window{Start: since, End: now, Step: 5 * time.Second}
	if an.Prometheus != nil {
		w.Step = an.Prometheus.Step.D()
	}
	var failed, unsure, names []string
	for _, m := range metrics {
		activity.RecordHeartbeat(ctx, "measuring "+m.Name)
		s, err := src.of(ctx, m)
		if err != nil {
			return nil, badInput(err)
		}
		meas := analysis.Measure(ctx, s, m, vars, w)
		res.Measurements = append(res.Measurements, meas)
		if !slices.Contains(names, meas.Source) {
			names = append(names, meas.Source)
		}
		switch meas.Decision {
		case rollout.Fail:
			failed = append(failed, meas.String())
		case rollout.Inconclusive, rollout.Error:
			unsure = append(unsure, meas.String())
		}
	}
	res.Source = strings.Join(names, "+")
	if in.Guard && src.counters != nil && src.counters.Source != "probe" {
		res.Counters = src.counters.Now
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
	return res, nil
}

// defaultMetrics are what a spec without metrics is judged on: its
// maxErrorRate and maxP95, read from the counter source there is (a
// router's average response time stands for the p95: an average over the
// limit is a p95 over it too), else from a direct probe. No traffic in
// the step passes, as a quiet step always has.
func defaultMetrics(an spec.Analysis, counters string) []spec.Metric {
	source, latency := spec.SourceCounters, analysis.QAvgResponseMs
	if counters == "" {
		source, latency = spec.SourceProbe, analysis.QP95Ms
	}
	out := []spec.Metric{{Name: "error-rate", Source: source, Query: analysis.QErrorRate, Max: &an.MaxErrorRate, OnNoData: rollout.Pass}}
	if an.MaxP95 > 0 && counters != "metrics" {
		ms := float64(an.MaxP95.D()) / float64(time.Millisecond)
		out = append(out, spec.Metric{Name: "response-ms", Source: source, Query: latency, Max: &ms, OnNoData: rollout.Pass})
	}
	return out
}

// mirrorMetrics judge a mirror step: the compared answers' mismatch rate,
// the copies' error rate and (when limited) their mean latency.
func mirrorMetrics(m *spec.Mirror) []spec.Metric {
	out := []spec.Metric{
		{Name: "mismatch-rate", Source: spec.SourceMirror, Query: analysis.QMismatchRate, Max: m.MaxMismatchRate, OnNoData: rollout.Inconclusive},
		{Name: "shadow-error-rate", Source: spec.SourceMirror, Query: analysis.QShadowErrorRate, Max: m.MaxErrorRate, OnNoData: rollout.Inconclusive},
	}
	if m.MaxLatency > 0 {
		ms := float64(m.MaxLatency.D()) / float64(time.Millisecond)
		out = append(out, spec.Metric{Name: "shadow-latency-ms", Source: spec.SourceMirror, Query: analysis.QShadowLatencyMs, Max: &ms, OnNoData: rollout.Inconclusive})
	}
	return out
}

// sources makes each metric's source once per analysis: the counters are
// read once, a probe sent once per slot, a Prometheus client made once.
type sources struct {
	a    *Activities
	svc  *spec.Service
	r    router.Router
	base map[rollout.Slot]rollout.Counters

	counters *analysis.Counters
	probe    *analysis.Probe
	prom     *analysis.Prometheus
	mirror   *analysis.Mirror
}

// readCounters reads the per-slot counters once per analysis.
func (s *sources) readCounters(ctx context.Context) *analysis.Counters {
	if s.counters == nil {
		now, name := s.a.counters(ctx, s.svc, s.r)
		s.counters = &analysis.Counters{Source: name, Base: s.base, Now: now}
	}
	return s.counters
}

// counterSource names where the slot's counters come from, or "" when
// nothing counts its traffic in this step.
func (s *sources) counterSource(ctx context.Context, slot rollout.Slot) string {
	s.readCounters(ctx)
	_, okNow := s.counters.Now[slot]
	_, okBase := s.base[slot]
	if s.counters.Source == "probe" || !okNow || !okBase {
		return ""
	}
	return s.counters.Source
}

// of is the source a metric runs on.
func (s *sources) of(ctx context.Context, m spec.Metric) (analysis.Source, error) {
	switch m.Source {
	case spec.SourceCounters:
		if s.readCounters(ctx).Source == "probe" {
			return nil, fmt.Errorf("metric %s: the %s router keeps no per-slot counters and rollout.analysis.metricsPath is not set: use source probe, prometheus or web", m.Name, s.svc.Router.Kind)
		}
		return s.counters, nil
	case spec.SourceProbe:
		if s.probe == nil {
			s.probe = &analysis.Probe{N: s.svc.Rollout.Analysis.ProbeRequests,
				URL: func(slot rollout.Slot) string { return "http://" + slotAddr(s.svc, slot) + s.svc.Checks.Health.Path }}
		}
		return s.probe, nil
	case spec.SourceWeb:
		return analysis.NewWeb(m.Web)
	case spec.SourceMirror:
		if s.mirror == nil {
			return nil, fmt.Errorf("metric %s: the mirror source answers only at a mirror step", m.Name)
		}
		return s.mirror, nil
	case spec.SourcePrometheus, "": // "": a spec recorded before sources had names
		if s.prom == nil {
			if s.svc.Rollout.Analysis.Prometheus == nil {
				return nil, fmt.Errorf("metric %s: no rollout.analysis.prometheus to query", m.Name)
			}
			p, err := analysis.NewPrometheus(s.svc.Rollout.Analysis.Prometheus)
			if err != nil {
				return nil, err
			}
			s.prom = p
		}
		return s.prom, nil
	}
	return nil, fmt.Errorf("metric %s: unknown source %q", m.Name, m.Source)
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

// BudgetInput names the run whose SLOs to read.
type BudgetInput struct {
	Spec *spec.Service `json:"spec,omitempty"` // nil: the run's own (see spec.go)
}

// Budget reads each SLO's error budget: burn rates over the workbook's
// windows and what is left of the period's budget. A query that fails is
// reported in its budget, not as an error: the rollout decides.
func (a *Activities) Budget(ctx context.Context, in BudgetInput) ([]analysis.Budget, error) {
	svc, err := a.spec(ctx, in.Spec)
	if err != nil {
		return nil, err
	}
	if svc.Rollout.Analysis.Prometheus == nil {
		return nil, badInput(errors.New("slos need rollout.analysis.prometheus"))
	}
	p, err := analysis.NewPrometheus(svc.Rollout.Analysis.Prometheus)
	if err != nil {
		return nil, badInput(err)
	}
	now := time.Now()
	var out []analysis.Budget
	for _, o := range svc.SLOs {
		activity.RecordHeartbeat(ctx, "reading "+o.Name)
		out = append(out, analysis.ReadBudget(ctx, p, o, svc.Name, svc.Environment, now))
	}
	return out, nil
}
