package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/rollout"
)

// promoteAndRetire makes the target the stable slot, keeps the old one warm
// for the scale-down delay (an abort inside it rolls back at once), then
// retires it.
func (d *deployment) promoteAndRetire(ctx workflow.Context) (*Status, error) {
	s := &d.in.Spec
	prev := d.st.Stable
	d.st.Stable, d.st.BakeEndsAt = d.st.Target, time.Time{}
	d.setPhase(ctx, rollout.PhaseScalingDown)
	if d.in.Hold {
		if ok, err := d.holdForRelease(ctx, prev); err != nil || ok {
			if err != nil {
				return nil, err
			}
			d.st.Stable = prev
			return d.rollback(ctx, d.abort.Reason, d.abort.By)
		}
	} else if prev != rollout.None {
		delay := s.Rollout.ScaleDownDelay.D()
		guard := s.Rollout.Guard != nil && workflow.GetVersion(ctx, "post-promotion-guard", workflow.DefaultVersion, 1) == 1
		if guard {
			d.st.Guard = &GuardState{Until: workflow.Now(ctx).Add(s.Rollout.Guard.For.D()), KnownGood: d.st.PreviousVersion, Phase: GuardJudging}
			d.fails = map[string]int{}
		}
		if delay > 0 {
			d.event(fmt.Sprintf("promoted; slot %s kept warm for %s for an instant rollback", prev, delay))
			warmFrom := workflow.Now(ctx)
			if guard {
				d.event(fmt.Sprintf("guard: judging %s every %s until %s", d.in.Version, s.Rollout.Guard.Interval, d.st.Guard.Until.Format(time.RFC3339)))
				breach, err := d.guardWarm(ctx, min(delay, s.Rollout.Guard.For.D()))
				if err != nil {
					return nil, err
				}
				if breach != "" {
					d.st.Stable = prev
					return d.rollback(ctx, "guard: "+breach, "guard")
				}
			}
			ok := d.abort != nil
			if left := delay - workflow.Now(ctx).Sub(warmFrom); left > 0 && !ok {
				var err error
				if ok, err = workflow.AwaitWithTimeout(ctx, left, func() bool { return d.abort != nil }); err != nil {
					return nil, err
				}
			}
			if ok {
				d.st.Stable = prev
				return d.rollback(ctx, d.abort.Reason, d.abort.By)
			}
		}
	}
	if prev != rollout.None {
		d.setPhase(ctx, rollout.PhaseRetiring)
		if err := retireSlot(ctx, s, activities.RetireInput{Slot: prev}); err != nil {
			d.event("retiring slot " + string(prev) + " failed: " + err.Error())
		} else {
			d.event("retired slot " + string(prev))
		}
	}
	if d.st.Guard != nil {
		d.startGuard(ctx)
	}
	d.contract(ctx)
	d.setPhase(ctx, rollout.PhasePromoted)
	countOutcome(ctx, "deployment", s.Name, s.Environment, "promoted")
	notifyEvent(ctx, s, fmt.Sprintf("%s promoted (previous %s)", d.in.Version, orUnknown(d.st.PreviousVersion)), "")
	return &d.st, workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

// rollback puts 100 % back on the stable slot with one absolute change, run
// as a local activity so it lands in milliseconds, and ends the rollout
// rolled back. The bad slot keeps running for inspection unless the spec
// says to retire it.
func (d *deployment) rollback(ctx workflow.Context, reason, by string) (*Status, error) {
	s := &d.in.Spec
	stable := d.st.Stable
	if d.abort != nil && d.abort.Handoff {
		// a Rollback workflow takes over the router from here
		d.rolledBack = true
		d.st.Reason = reason
		d.st.BakeEndsAt = time.Time{}
		d.event(fmt.Sprintf("handed over to the Rollback workflow (%s) at %s", reason, d.st.Weights))
		d.setPhase(ctx, rollout.PhaseRolledBack)
		_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
		return nil, ErrRolledBack.end("rolled back: "+reason, &d.st)
	}
	d.event(fmt.Sprintf("rolling back to slot %s: %s", stable, reason))
	rep := &RollbackReport{Service: s.Name, Environment: s.Environment, Strategy: Immediate, Reason: reason, By: orUnknown(by),
		From: stable.Other(), To: stable, BadVersion: d.in.Version, PreviousVersion: d.st.PreviousVersion,
		StartedAt: workflow.Now(ctx), Phase: rollout.PhaseRollingBack}
	res, err := rollbackNow(ctx, stable)
	if err != nil {
		return nil, err
	}
	d.setWeights(ctx, res.Weights)
	d.st.Routes = nil // the Shift activity clears them with the weights
	d.rolledBack = true
	d.st.Reason = reason
	d.st.BakeEndsAt = time.Time{}
	rep.EndedAt, rep.Weights, rep.Phase = workflow.Now(ctx), res.Weights, rollout.PhaseRolledBack
	rep.Timeline = []WeightChange{{At: rep.EndedAt, Weights: res.Weights}}
	rep.Checks = d.st.Checks
	d.st.Rollback = rep
	recordRollback(ctx, rep)
	d.event(fmt.Sprintf("rolled back by %s: %s", orUnknown(by), res.Weights))
	if s.Rollout.RetireOnFailure {
		bad := stable.Other()
		if err := retireSlot(ctx, s, activities.RetireInput{Slot: bad}); err != nil {
			d.event("retiring slot " + string(bad) + " failed: " + err.Error())
		}
	} else {
		d.event(fmt.Sprintf("slot %s left running for inspection", stable.Other()))
	}
	d.setPhase(ctx, rollout.PhaseRolledBack)
	countOutcome(ctx, "deployment", s.Name, s.Environment, "rolled-back")
	notifyEvent(ctx, s, fmt.Sprintf("%s rolled back to %s: %s", d.in.Version, orUnknown(d.st.PreviousVersion), reason),
		fmt.Sprintf("immediate rollback by %s in %s, now %s", orUnknown(by), rep.Duration(), rep.Weights))
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	return nil, ErrRolledBack.end("rolled back: "+reason, &d.st)
}

// rollbackAfter rolls back after an infrastructure error during shifting.
func (d *deployment) rollbackAfter(ctx workflow.Context, what string, err error) (*Status, error) {
	if d.abort != nil {
		return d.rollback(ctx, d.abort.Reason, d.abort.By)
	}
	return d.rollback(ctx, what+" failed: "+rootMessage(err), "switchyard")
}

// fail ends a rollout that never moved traffic: the live slot was not touched.
func (d *deployment) fail(ctx workflow.Context, what string, err error) (*Status, error) {
	reason := what + ": " + rootMessage(err)
	if d.abort != nil {
		reason = what + ": aborted by " + orUnknown(d.abort.By) + ": " + d.abort.Reason
	}
	d.st.Reason = reason
	d.event("failed " + reason + "; live slot untouched")
	s := &d.in.Spec
	if s.Rollout.RetireOnFailure && d.st.Target != rollout.None && d.st.Weights.Of(d.st.Target) == 0 {
		_ = retireSlot(ctx, s, activities.RetireInput{Slot: d.st.Target})
	}
	d.setPhase(ctx, rollout.PhaseFailed)
	countOutcome(ctx, "deployment", s.Name, s.Environment, "failed")
	notifyEvent(ctx, s, fmt.Sprintf("%s failed before any traffic moved: %s", d.in.Version, reason), "")
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	return nil, ErrFailed.end(reason, &d.st)
}

// holdForRelease tells the parent release that this rollout promoted, then
// keeps the old slot warm until the release is done with the environment
// (false) or aborts the rollout (true) to undo the environment as a unit.
func (d *deployment) holdForRelease(ctx workflow.Context, prev rollout.Slot) (bool, error) {
	msg := ServicePromoted{Service: d.st.Service, Environment: d.st.Environment, Version: d.in.Version,
		PreviousVersion: d.st.PreviousVersion, First: prev == rollout.None}
	if p := workflow.GetInfo(ctx).ParentWorkflowExecution; p != nil {
		if err := workflow.SignalExternalWorkflow(ctx, p.ID, p.RunID, ServicePromotedSignal, msg).Get(ctx, nil); err != nil {
			d.event("telling release " + d.in.Release + " failed: " + rootMessage(err))
		}
	}
	if prev == rollout.None {
		return false, nil // a first deployment has nothing to go back to
	}
	d.event(fmt.Sprintf("promoted; slot %s kept warm until release %s is done with %s", prev, d.in.Release, d.st.Environment))
	if err := workflow.Await(ctx, func() bool { return d.abort != nil || d.releaseDone }); err != nil {
		return false, err
	}
	return d.abort != nil, nil
}

// contract runs a contract once the old slot is retired (for a release's
// rollout, once the whole environment is promoted): by default the previous
// version's (it removes what only the version before that needed), or this
// version's own after the spec's delay. The rollout is promoted whatever
// happens here: a contract that fails is reported and tried again with the
// next release.
func (d *deployment) contract(ctx workflow.Context) {
	s := &d.in.Spec
	if s.Migrations == nil {
		return
	}
	owner := d.st.PreviousVersion
	if delay, own := s.Migrations.ContractDelay(); own {
		owner = d.in.Version
		if delay > 0 {
			d.st.ContractAt = workflow.Now(ctx).Add(delay)
			d.event(fmt.Sprintf("schema: the contract of %s runs in %s (%s)", owner, delay, d.st.ContractAt.UTC().Format(time.RFC3339)))
			if err := workflow.Sleep(ctx, delay); err != nil {
				return
			}
			d.st.ContractAt = time.Time{}
		}
	}
	if owner == "" {
		return
	}
	d.setPhase(ctx, rollout.PhaseMigrating)
	steps, err := migrate(ctx, s, activities.SchemaInput{Phase: "contract", Version: owner, Live: d.in.Version})
	if err != nil {
		d.event(fmt.Sprintf("schema: the contract of %s did not run: %s", owner, rootMessage(err)))
		alert(ctx, s, "schema", fmt.Sprintf("%s: the contract of %s failed", s.Name, owner), rootMessage(err))
		return
	}
	if len(steps) == 0 {
		d.event(fmt.Sprintf("schema: %s has no contract of its own to run", owner))
		return
	}
	d.schemaRan(ctx, steps)
}
