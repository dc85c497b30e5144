package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// shiftSteps moves traffic to the target step by step, baking and
// analysing each. It returns nil, nil once the target has 100 %, or how the
// rollout ended when it rolled back.
func (d *deployment) shiftSteps(ctx workflow.Context) (*Status, error) {
	s := &d.in.Spec
	first, cont := 0, d.cont
	d.cont = nil
	if cont == nil {
		d.setPhase(ctx, rollout.PhaseShifting)
		notifyEvent(ctx, s, fmt.Sprintf("rollout of %s started (previous %s)", d.in.Version, orUnknown(d.st.PreviousVersion)), "")
	} else {
		first = cont.Status.Step
	}
	steps := s.Rollout.Steps
	if d.st.Stable == rollout.None {
		steps = []int{100} // nothing to compare with, nobody to protect
	}
	for i := first; i < len(steps); i++ {
		if err := workflow.Await(ctx, func() bool { return !d.st.Paused || d.abort != nil }); err != nil {
			return nil, err
		}
		if d.abort != nil {
			return d.rollback(ctx, d.abort.Reason, d.abort.By)
		}
		pct := steps[i]
		if d.promote != nil && d.promote.Full {
			pct, i = 100, len(steps)-1
		}
		d.promote = nil
		d.st.Step = i
		base, bake := cont.resumeBase(i), d.bakeTime()
		if base != nil {
			bake = cont.Remaining // the traffic is where the last run left it
		} else {
			var err error
			label := fmt.Sprintf("step %d/%d", i+1, len(steps))
			switch pct {
			case spec.HeaderStep:
				label += " (header only: matching requests reach the new version)"
			case spec.MirrorStep:
				label += " (mirror: a copy of live requests reaches the new version, its answers discarded)"
			}
			if base, err = d.shift(ctx, rollout.Split(d.st.Target, max(pct, 0)), label); err != nil {
				return d.rollbackAfter(ctx, "shifting to "+fmt.Sprint(pct)+"%", err)
			}
		}
		cont = nil
		if d.st.Stable == rollout.None {
			break
		}
		reason, more := d.bake(ctx, base, bake)
		if more != nil {
			return d.continueAsNew(ctx, more)
		}
		if reason != "" {
			return d.rollback(ctx, reason, "analysis")
		}
		// an inconclusive last analysis paused the step: a person decides
		if err := workflow.Await(ctx, func() bool { return !d.st.Paused || d.abort != nil || d.promote != nil }); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if d.abort != nil {
			return d.rollback(ctx, d.abort.Reason, d.abort.By)
		}
	}
	return nil, nil
}

// setWeights records the router's weights, and in the timeline when they changed.
func (d *deployment) setWeights(ctx workflow.Context, w rollout.Weights) {
	d.st.Weights = w
	if n := len(d.st.Timeline); n == 0 || d.st.Timeline[n-1].Weights != w {
		d.st.Timeline = append(d.st.Timeline, WeightChange{At: workflow.Now(ctx), Weights: w})
	}
}

// shift applies an absolute split and returns the counters at that moment.
// A spec that targets puts its routes in force with it: until the new
// version has all the traffic (then, and on a rollback, they are cleared).
func (d *deployment) shift(ctx workflow.Context, w rollout.Weights, label string) (*activities.ShiftResult, error) {
	in := activities.ShiftInput{Weights: w}
	if d.in.Spec.Targets() && w.Of(d.st.Target) < 100 {
		// before the checks pass, only the test route reaches the new version
		in.Routes = d.routes(d.st.Phase == rollout.PhaseVerifying)
		in.Routes.Weight = w.Of(d.st.Target)
		if d.mirroring() {
			in.Routes.MirrorShare, in.Routes.MirrorBody = d.in.Spec.Rollout.Mirror.Share, d.in.Spec.Rollout.Mirror.CompareBody
		}
	}
	res, err := shiftTraffic(ctx, &d.in.Spec, in)
	if err != nil {
		return nil, err
	}
	d.st.Routes = in.Routes
	if in.Routes != nil {
		label += "; routes: " + in.Routes.String()
	}
	d.setWeights(ctx, res.Weights)
	d.guardBase = res.Counters
	d.st.AnalysisSource = res.Source
	d.stepSince, d.fails = workflow.Now(ctx), map[string]int{}
	d.event(fmt.Sprintf("%s: %s", label, res.Weights))
	d.upsert(ctx)
	return &res, nil
}

// bakeTime is a step's bake: the spec's, slowed while an error budget is low.
func (d *deployment) bakeTime() time.Duration {
	b := d.in.Spec.Rollout.Bake.D()
	if d.bakeFactor > 1 {
		b = time.Duration(float64(b) * d.bakeFactor)
	}
	return b
}

// routes are the targeting routes of the spec toward the target slot; with
// testOnly, only the test route (the checks before any traffic).
func (d *deployment) routes(testOnly bool) *rollout.Routes {
	s := &d.in.Spec
	r := &rollout.Routes{Target: d.st.Target}
	if tr := s.Checks.TestRoute; tr != nil {
		r.TestHeader, r.TestValue = tr.Header, tr.Value
	}
	if testOnly {
		return r
	}
	if m := s.Rollout.Match; m != nil {
		r.Header, r.Cookie = m.Header, m.Cookie
	}
	if st := s.Rollout.Sticky; st != nil {
		r.StickyCookie, r.StickyHeader = st.Cookie, st.Header
	}
	return r
}

// mirroring says whether the current step is the mirror step.
func (d *deployment) mirroring() bool {
	pct, ok := d.specStep()
	return ok && d.st.Phase == rollout.PhaseShifting && pct == spec.MirrorStep && d.in.Spec.Rollout.Mirror != nil
}

// specStep is the spec's step the rollout stands at, and false where it
// stands at none of them (before the first, or a first deployment, which
// goes to 100 % in one step of its own).
func (d *deployment) specStep() (int, bool) {
	steps := d.in.Spec.Rollout.Steps
	if d.st.Stable == rollout.None || d.st.Step < 0 || d.st.Step >= len(steps) {
		return 0, false
	}
	return steps[d.st.Step], true
}
