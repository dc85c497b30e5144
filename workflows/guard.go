package workflows

import (
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// The post-promotion guard (rollout.guard) judges a promoted version with
// the rollout's own analysis after it reached 100 %. Inside the warm window
// (the old slot still runs, scaleDownDelay) the Deployment itself guards,
// and a breach is its instant rollback to the warm slot. After it, a Guard
// workflow takes over for the rest of guard.for, and a breach redeploys the
// last known-good version on a fast track: its checks, then 100 % at once.
// Monitoring's rollbackOnCritical takes the same two ways (monitor.go).

// GuardInput is what a Guard judges, until when, and what it restores.
type GuardInput struct {
	Spec      spec.Service                      `json:"spec"`
	Version   string                            `json:"version"`   // the promoted version
	KnownGood string                            `json:"knownGood"` // the version before it
	Slot      rollout.Slot                      `json:"slot"`      // where the promoted version runs
	Until     time.Time                         `json:"until"`
	Baseline  map[rollout.Slot]rollout.Counters `json:"baseline,omitempty"`
	// Judged counts the judgements of earlier runs (continue-as-new).
	Judged int `json:"judged,omitempty"`
}

// Guard phases.
const (
	GuardJudging    = "judging"
	GuardPassed     = "passed"     // held for the whole guard
	GuardSuperseded = "superseded" // another version went live
	GuardRestored   = "restored"   // a breach redeployed the known-good version
	GuardFailed     = "restore-failed"
)

// GuardState is the guard's story, read with the status Query (the
// Deployment's status carries it too).
type GuardState struct {
	Workflow  string    `json:"workflow,omitempty"` // the Guard workflow after the warm window
	Until     time.Time `json:"until"`
	KnownGood string    `json:"knownGood,omitempty"`
	Phase     string    `json:"phase"`
	Judged    int       `json:"judged"`
	Last      string    `json:"last,omitempty"`   // the last judgement
	Reason    string    `json:"reason,omitempty"` // why it breached, or how it ended
}

// GuardStatus is a Guard workflow's status.
type GuardStatus struct {
	Service      string     `json:"service"`
	Environment  string     `json:"environment"`
	Version      string     `json:"version"`
	Guard        GuardState `json:"guard"`
	Events       []Event    `json:"events"`
	Measurements []Measured `json:"measurements,omitempty"`
}

// guardJudgementsPerRun bounds a Guard run's history: then it continues as new.
const guardJudgementsPerRun = 500

// judgeGuard runs one guard analysis of the promoted slot. It returns the
// breach ("" when it held) and the counters for the next judgement. The
// whole guard is one step for failureLimit: a metric breaches once it has
// failed more times than its limit (fails counts them).
func judgeGuard(ctx workflow.Context, s *spec.Service, slot rollout.Slot, version string,
	base map[rollout.Slot]rollout.Counters, st *GuardState, fails map[string]int, keep func(rollout.CheckResult)) (string, map[rollout.Slot]rollout.Counters) {
	res, err := analyzeSlot(ctx, s, activities.AnalyzeInput{Slot: slot, Baseline: base, Version: version, Weight: 100, Guard: true})
	if err != nil {
		st.Last = "could not judge: " + rootMessage(err)
		return "", base
	}
	st.Judged++
	keep(res)
	if res.Counters != nil {
		base = res.Counters
	}
	var over, tolerated []string
	for _, m := range res.Measurements {
		if m.Decision != rollout.Fail {
			continue
		}
		fails[m.Metric]++
		if limit := failureLimit(s.Rollout.GuardMetrics(), m.Metric); fails[m.Metric] > limit {
			over = append(over, m.String())
		} else {
			tolerated = append(tolerated, fmt.Sprintf("%s failed (%d of %d tolerated)", m.Metric, fails[m.Metric], limit))
		}
	}
	switch {
	case len(over) > 0:
		st.Last = "failed: " + strings.Join(over, "; ")
		return strings.Join(over, "; "), base
	case len(tolerated) > 0:
		st.Last = strings.Join(tolerated, "; ")
	case !res.Passed && len(res.Measurements) == 0:
		st.Last = "failed: " + res.Detail
		return res.Detail, base
	case res.Inconclusive:
		st.Last = res.Detail
	default:
		st.Last = "held: " + res.Detail
	}
	return "", base
}

// guardWarm is the Deployment's guard inside its warm window: it judges
// every guard interval until the window ends, and returns a breach, or ""
// (also when an abort arrived: the caller rolls back for it).
func (d *deployment) guardWarm(ctx workflow.Context, delay time.Duration) (string, error) {
	s := &d.in.Spec
	g := s.Rollout.Guard
	end := workflow.Now(ctx).Add(delay)
	for {
		left := end.Sub(workflow.Now(ctx))
		if left <= 0 {
			return "", nil
		}
		if _, err := workflow.AwaitWithTimeout(ctx, min(g.Interval.D(), left), func() bool { return d.abort != nil }); err != nil || d.abort != nil {
			return "", err
		}
		if !workflow.Now(ctx).Before(end) {
			return "", nil
		}
		breach, base := judgeGuard(d.work, s, d.st.Target, d.in.Version, d.guardBase, d.st.Guard, d.fails, func(res rollout.CheckResult) {
			d.measured(res)
		})
		d.guardBase = base
		if breach != "" {
			d.st.Guard.Phase, d.st.Guard.Reason = GuardRestored, breach
			return breach, nil
		}
	}
}

// startGuard hands the rest of the guard to a Guard workflow once the old
// slot is retired; a guard still running for the service's earlier version
// is replaced. It runs on after this rollout ends.
func (d *deployment) startGuard(ctx workflow.Context) {
	s := &d.in.Spec
	st := d.st.Guard
	if !workflow.Now(ctx).Before(st.Until) {
		st.Phase = GuardPassed
		d.event("guard: held through " + st.Until.Format(time.RFC3339))
		return
	}
	id := GuardID(s.Name, s.Environment)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            id,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING,
		TypedSearchAttributes: temporal.NewSearchAttributes(SAService.ValueSet(s.Name), SAEnvironment.ValueSet(s.Environment),
			SAVersion.ValueSet(d.in.Version)),
	})
	f := workflow.ExecuteChildWorkflow(cctx, GuardWorkflow, GuardInput{Spec: *s, Version: d.in.Version, KnownGood: d.st.PreviousVersion,
		Slot: d.st.Target, Until: st.Until, Baseline: d.guardBase, Judged: st.Judged})
	if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		d.event("guard: could not start the guard workflow: " + rootMessage(err))
		return
	}
	st.Workflow = id
	d.event(fmt.Sprintf("guard: %s judges %s until %s; a breach redeploys %s", id, d.in.Version, st.Until.Format(time.RFC3339), orUnknown(st.KnownGood)))
}

// Guard judges a promoted version until its guard ends, and on a breach
// (its own, or a Breach signal from monitoring) redeploys the known-good
// version on a fast track. It ends early when another version goes live.
func Guard(ctx workflow.Context, in GuardInput) (*GuardStatus, error) {
	s := &in.Spec
	st := &GuardStatus{Service: s.Name, Environment: s.Environment, Version: in.Version,
		Guard: GuardState{Until: in.Until, KnownGood: in.KnownGood, Phase: GuardJudging, Judged: in.Judged}}
	event := func(msg string) {
		st.Events = append(st.Events, Event{At: workflow.Now(ctx), Message: msg})
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (*GuardStatus, error) { return st, nil }); err != nil {
		return nil, err
	}
	breach := ""
	c := &controls{ctx: ctx, ignored: func(string, error) {}}
	c.signal(Breach, func(ctx workflow.Context, ch workflow.ReceiveChannel) {
		var r AbortRequest
		ch.Receive(ctx, &r)
		breach = fmt.Sprintf("%s (by %s)", orDefault(r.Reason, "breach signalled"), orDefault(r.By, "signal"))
		event("breach signalled: " + breach)
	})
	c.listen()
	event(fmt.Sprintf("judging %s in slot %s until %s", in.Version, in.Slot, in.Until.Format(time.RFC3339)))
	base, runs, fails := in.Baseline, 0, map[string]int{}
	for breach == "" {
		left := in.Until.Sub(workflow.Now(ctx))
		if left <= 0 {
			st.Guard.Phase = GuardPassed
			event("held through the guard")
			return st, nil
		}
		if runs >= guardJudgementsPerRun {
			next := in
			next.Baseline, next.Judged = base, st.Guard.Judged
			return nil, workflow.NewContinueAsNewError(ctx, GuardWorkflow, next)
		}
		if _, err := workflow.AwaitWithTimeout(ctx, min(s.Rollout.Guard.Interval.D(), left), func() bool { return breach != "" }); err != nil {
			return nil, err
		}
		if breach != "" {
			break
		}
		state, err := readState(ctx, activities.ReadStateInput{})
		if err == nil {
			if live := state.Weights.Live(); live != in.Slot || state.Instance(live).Version != in.Version {
				st.Guard.Phase, st.Guard.Reason = GuardSuperseded, fmt.Sprintf("%s is no longer live (%s)", in.Version, state.Weights)
				event(st.Guard.Reason)
				return st, nil
			}
		}
		runs++
		breach, base = judgeGuard(ctx, s, in.Slot, in.Version, base, &st.Guard, fails, func(res rollout.CheckResult) {
			for _, m := range res.Measurements {
				st.Measurements = append(st.Measurements, Measured{At: res.At, Weight: 100, Measurement: m})
			}
			if n := len(st.Measurements); n > maxMeasurements {
				st.Measurements = st.Measurements[n-maxMeasurements:]
			}
		})
		event(st.Guard.Last)
	}
	st.Guard.Reason = breach
	return st, restoreKnownGood(ctx, s, in.KnownGood, breach, st, event)
}

// restoreKnownGood redeploys the known-good version on a fast track: the
// rollout's checks on the idle slot, then all traffic at once, no bakes
// (and no guard of its own). It is an ordinary Deployment, recorded as one.
func restoreKnownGood(ctx workflow.Context, s *spec.Service, good, reason string, st *GuardStatus, event func(string)) error {
	if good == "" {
		st.Guard.Phase = GuardFailed
		event("breach, but no known-good version to restore: " + reason)
		alert(ctx, s, "guard", fmt.Sprintf("%s: %s breached its guard; nothing to restore", s.Name, st.Version), reason)
		return nil
	}
	fast := *s
	fast.Rollout.Steps, fast.Rollout.Bake, fast.Rollout.Guard = []int{100}, 0, nil
	event(fmt.Sprintf("breach: redeploying %s on a fast track (checks, then 100 %%): %s", good, reason))
	alert(ctx, s, "guard", fmt.Sprintf("%s: %s breached its guard; redeploying %s", s.Name, st.Version, good), reason)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            DeploymentID(s.Name, s.Environment),
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(RunAttributes(s.Name, s.Environment, good, rollout.PhaseValidating, 0)...),
	})
	var out Status
	err := workflow.ExecuteChildWorkflow(cctx, DeploymentWorkflow, DeploymentInput{Spec: fast, Version: good,
		By: "guard (" + strings.TrimSpace(clip(reason, 200)) + ")"}).Get(ctx, &out)
	if err != nil {
		st.Guard.Phase = GuardFailed
		event("the fast-track redeploy of " + good + " failed: " + rootMessage(err))
		return nil
	}
	st.Guard.Phase = GuardRestored
	event(fmt.Sprintf("%s restored: %s", good, out.Weights))
	return nil
}

// clip shortens a reason for a one-line field.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
