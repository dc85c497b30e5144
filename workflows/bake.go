package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// bake holds the step for the bake time, analysing the new slot every
// interval; pausing stops the clock. It returns a reason to roll back, or "".
func (d *deployment) bake(ctx workflow.Context, base *activities.ShiftResult, remaining time.Duration) (string, *Continued) {
	s := &d.in.Spec
	interval := s.Rollout.Analysis.Interval.D()
	sinceAnalysis := time.Duration(0)
	watch, stopWatch := d.watch(ctx, base)
	defer stopWatch()
	for remaining > 0 {
		if d.abort != nil || d.promote != nil || ctx.Err() != nil {
			return "", nil
		}
		if watch != nil && watch.IsReady() {
			if reason := d.watched(ctx, watch); reason != "" {
				return reason, nil
			}
			watch = nil
		}
		wait := min(interval-sinceAnalysis, remaining)
		after := remaining - wait // of the bake, once this wait is over
		ran, err := countdown{
			paused: func() bool { return d.st.Paused },
			stop: func() bool {
				return d.abort != nil || d.promote != nil || (watch != nil && watch.IsReady())
			},
			ends: func(at time.Time) {
				d.st.BakeEndsAt = time.Time{}
				if !at.IsZero() {
					d.st.BakeEndsAt = at.Add(after)
				}
			},
		}.run(ctx, wait)
		remaining -= ran
		sinceAnalysis += ran
		if err != nil || d.abort != nil || d.promote != nil || ran < wait {
			continue
		}
		sinceAnalysis = 0
		if reason := d.analyze(ctx, base); reason != "" {
			return reason, nil
		}
		d.analyses++
		if remaining > 0 && d.historyLong(ctx) {
			return "", &Continued{Status: d.st, Fails: d.fails, StepSince: d.stepSince, Remaining: remaining, Base: *base, Runs: d.runs() + 1}
		}
	}
	d.st.BakeEndsAt = time.Time{}
	return "", nil
}

// maxAnalysesPerRun bounds one run's history: each analysis adds about
// ten events (its timer, its activity, their workflow tasks), so a run
// stays near 10,000 of Temporal's 51,200 and well under its 50 MB.
const maxAnalysesPerRun = 1000

// historyLong says the run should continue as new at this point of its
// bake: enough analyses in this run (or the server suggests it), and
// nothing waiting to be handled.
func (d *deployment) historyLong(ctx workflow.Context) bool {
	limit := maxAnalysesPerRun
	if d.in.AnalysesPerRun > 0 {
		limit = min(limit, d.in.AnalysesPerRun)
	}
	if d.analyses < limit && !workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
		return false
	}
	if d.st.Paused || d.abort != nil || d.promote != nil || !workflow.AllHandlersFinished(ctx) {
		return false
	}
	for _, name := range []string{Pause, Resume, Abort, Promote, ReleaseDone} {
		if workflow.GetSignalChannel(ctx, name).Len() > 0 {
			return false
		}
	}
	return workflow.GetVersion(ctx, "bake-continue-as-new", workflow.DefaultVersion, 1) == 1
}

func (d *deployment) runs() int {
	if d.in.Continued == nil {
		return 0
	}
	return d.in.Continued.Runs
}

// continueAsNew ends this run and starts the next one where it stands: the
// same rollout, the same status, the bake's remaining time.
func (d *deployment) continueAsNew(ctx workflow.Context, c *Continued) (*Status, error) {
	d.event(fmt.Sprintf("continuing as new after %d analyses in this run, to keep its history short", d.analyses))
	c.Status = d.st
	in := d.in
	in.Continued = c
	return nil, workflow.NewContinueAsNewError(ctx, DeploymentWorkflow, in)
}

// resumeBase is the step's base when the run resumes step i, else nil.
func (c *Continued) resumeBase(i int) *activities.ShiftResult {
	if c == nil || i != c.Status.Step {
		return nil
	}
	b := c.Base
	return &b
}

// analyze judges the target on the traffic it served since the step began,
// and returns a reason to roll back, or "". An inconclusive analysis
// pauses the rollout and alerts: resume goes on, abort rolls back.
func (d *deployment) analyze(ctx workflow.Context, base *activities.ShiftResult) string {
	s := &d.in.Spec
	in := activities.AnalyzeInput{Slot: d.st.Target, Baseline: base.Counters, Version: d.in.Version,
		LiveVersion: d.st.PreviousVersion, Since: d.stepSince, Weight: d.st.Weights.Of(d.st.Target)}
	if d.mirroring() {
		in.Mirror = base.Mirror // judged on the shadow traffic alone
	}
	res, err := analyzeSlot(d.work, s, in)
	if d.abort != nil {
		return ""
	}
	if err != nil {
		return "analysis could not run: " + err.Error()
	}
	d.recordCheck(res)
	d.st.AnalysisSource = res.Source
	at := d.stepAt()
	if len(res.Measurements) > 0 {
		d.measured(res)
		res.Passed, res.Detail = d.withinLimits(res)
	}
	switch {
	case !res.Passed:
		return "analysis failed at " + at + ": " + res.Detail
	case res.Inconclusive:
		d.st.Paused = true
		d.event(fmt.Sprintf("analysis inconclusive at %s, paused: resume to go on, abort to roll back (%s)", at, res.Detail))
		alert(ctx, s, "analysis", fmt.Sprintf("%s: analysis of %s inconclusive at %s; rollout paused", s.Name, d.in.Version, at), res.Detail)
	}
	return ""
}

// measured keeps an analysis's measurements in the status and the events.
func (d *deployment) measured(res rollout.CheckResult) {
	var parts []string
	for _, m := range res.Measurements {
		d.st.Measurements = append(d.st.Measurements, Measured{At: res.At, Step: d.st.Step, Weight: d.st.Weights.Of(d.st.Target), Measurement: m})
		parts = append(parts, m.String())
	}
	if n := len(d.st.Measurements); n > maxMeasurements {
		d.st.Measurements = d.st.Measurements[n-maxMeasurements:]
	}
	d.event(fmt.Sprintf("analysis at %s: %s", d.stepAt(), strings.Join(parts, "; ")))
}

// stepAt names where the rollout stands for the events: "25%", or "the
// mirror step" and "the header step" (the weights at 0 %).
func (d *deployment) stepAt() string {
	if pct, ok := d.specStep(); ok && pct <= 0 {
		return "the " + d.in.Spec.Rollout.Steps.Label(d.st.Step) + " step"
	}
	return fmt.Sprint(d.st.Weights.Of(d.st.Target)) + "%"
}

// withinLimits applies each metric's failureLimit to the step's failed
// measurements: it says whether the analysis passes, and why not.
func (d *deployment) withinLimits(res rollout.CheckResult) (bool, string) {
	var over []string
	for _, m := range res.Measurements {
		if m.Decision != rollout.Fail {
			continue
		}
		d.fails[m.Metric]++
		if limit := failureLimit(d.in.Spec.Rollout.Analysis.Metrics, m.Metric); d.fails[m.Metric] > limit {
			over = append(over, m.String())
		} else {
			d.event(fmt.Sprintf("%s failed (%d of %d tolerated this step): %s", m.Metric, d.fails[m.Metric], limit, m.Reason))
		}
	}
	if len(over) > 0 {
		return false, strings.Join(over, "; ")
	}
	return true, res.Detail
}

// watch starts the early-stop watch of a step, where the router counts
// each slot's requests; stop cancels it.
func (d *deployment) watch(ctx workflow.Context, base *activities.ShiftResult) (workflow.Future, func()) {
	s := &d.in.Spec
	e := s.Rollout.Analysis.EarlyStop
	if workflow.GetVersion(ctx, "early-stop", workflow.DefaultVersion, 1) == workflow.DefaultVersion ||
		e.Disabled || e.FalseAlarmRate == 0 || d.st.Weights.Of(d.st.Target) >= 100 {
		return nil, func() {}
	}
	if _, ok := base.Counters[d.st.Target]; !ok {
		return nil, func() {}
	}
	if _, ok := base.Counters[d.st.Stable]; !ok {
		return nil, func() {}
	}
	wctx, cancel := workflow.WithCancel(d.work)
	wctx = workflow.WithActivityOptions(wctx, workflow.ActivityOptions{
		StartToCloseTimeout: d.bakeTime() + 31*time.Minute,
		HeartbeatTimeout:    5 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3, NonRetryableErrorTypes: []string{activities.ErrBadInput}},
	})
	f := workflow.ExecuteActivity(wctx, acts.Watch, activities.WatchInput{Slot: d.st.Target, Baseline: base.Counters,
		For: d.bakeTime() + 30*time.Minute})
	return f, cancel
}

// watched reads the watch's result: a reason to roll back, or "" (the
// watch ended without stopping, or failed: the interval analysis goes on).
func (d *deployment) watched(ctx workflow.Context, f workflow.Future) string {
	var res rollout.CheckResult
	if err := f.Get(ctx, &res); err != nil {
		if d.abort == nil && ctx.Err() == nil {
			d.event("early stop watch ended: " + err.Error())
		}
		return ""
	}
	if res.Passed {
		return ""
	}
	d.recordCheck(res)
	return "analysis failed at " + fmt.Sprint(d.st.Weights.Of(d.st.Target)) + "%: " + res.Detail
}

// failureLimit is a metric's failureLimit in the list that names it (0 for
// a metric it does not name: the error rate a spec without metrics is judged on).
func failureLimit(ms []spec.Metric, metric string) int {
	for _, m := range ms {
		if m.Name == metric {
			return m.FailureLimit
		}
	}
	return 0
}
