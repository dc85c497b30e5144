package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/schema"
	"github.com/switchyard/switchyard/internal/spec"
)

// failure is why a phase before the first shift stopped the rollout.
type failure struct {
	what string
	err  error
}

// checkInput refuses a version no client should have sent: the workflow
// runs on Switchyard's worker, so a client that skips the CLI's check (the
// temporal CLI, the SDK) is refused here before anything is touched.
func (d *deployment) checkInput(workflow.Context) *failure {
	if err := spec.CheckVersion(d.in.Version); err != nil {
		// shown quoted from here on: the raw text goes into no alert or page
		d.in.Version = fmt.Sprintf("%.140q", d.in.Version)
		d.st.Version = d.in.Version
		return &failure{"checking the input", temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrBadInput, nil)}
	}
	return nil
}

// hold takes the service's writer lock (lock.go): a rollback of the
// service started at the same moment by any client cannot run beside it.
func (d *deployment) hold(ctx workflow.Context) *failure {
	if workflow.GetVersion(ctx, "service-lock", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	if err := holdService(ctx, d.in.Spec.Name, d.in.Spec.Environment, 0); err != nil {
		return &failure{"taking the service", err}
	}
	return nil
}

// window holds the rollout until the spec's allowed window opens, and
// stops it in a freeze unless it is an emergency. A release's rollouts
// skip it: the release keeps its own windows.
func (d *deployment) window(ctx workflow.Context) *failure {
	s := &d.in.Spec
	if s.Windows.Empty() || d.in.Hold {
		return nil
	}
	ws, errs := s.Windows.Parse("windows")
	if len(errs) > 0 {
		return &failure{"reading the windows", errors.New(errs[0].Field + ": " + errs[0].Msg)}
	}
	if f, frozen := ws.Frozen(workflow.Now(ctx)); frozen {
		if d.in.Emergency == "" {
			return &failure{"checking the calendar", fmt.Errorf("frozen (%s)", f.Text)}
		}
		d.event(fmt.Sprintf("through the freeze %s: emergency: %s", f.Text, d.in.Emergency))
	}
	ok, next := ws.Allowed(workflow.Now(ctx))
	if ok {
		return nil
	}
	if next.IsZero() {
		return &failure{"checking the windows", errors.New("no allowed window ever opens")}
	}
	d.st.WaitingUntil = next
	d.event(fmt.Sprintf("outside the allowed windows: waiting until %s", next.UTC().Format(time.RFC3339)))
	d.setPhase(ctx, rollout.PhaseWaiting)
	if _, err := workflow.AwaitWithTimeout(ctx, next.Sub(workflow.Now(ctx)), func() bool { return d.abort != nil }); err != nil {
		return &failure{"waiting for the window", err}
	}
	d.st.WaitingUntil = time.Time{}
	if d.abort != nil {
		return &failure{"waiting for the window", errors.New(d.abort.Reason)}
	}
	d.setPhase(ctx, rollout.PhaseValidating)
	return nil
}

// budget holds the rollout while an SLO burns its error budget fast (an
// emergency goes through, recorded), and slows the bakes while a budget is
// low. A budget that cannot be read holds nothing: the rollout goes on, and
// says so.
func (d *deployment) budget(ctx workflow.Context) *failure {
	s := &d.in.Spec
	if len(s.SLOs) == 0 || d.cont != nil {
		return nil
	}
	bs, err := readBudget(d.work, s)
	if err != nil {
		d.event("error budget unread, going on: " + rootMessage(err))
		return nil
	}
	d.st.Budgets = bs
	for i, b := range bs {
		d.event("error budget: " + b.String())
		if b.FastBurn {
			if d.in.Emergency == "" {
				return &failure{"checking the error budget", fmt.Errorf("held: SLO %s burns its error budget fast (%s); an emergency goes through: --emergency --reason", b.SLO, b.Why)}
			}
			d.event(fmt.Sprintf("through the error budget of %s: emergency: %s", b.SLO, d.in.Emergency))
		}
		if o := s.SLOs[i]; b.Error == "" && b.Remaining < o.SlowBakesBelow && o.SlowBakesBy > d.bakeFactor {
			d.bakeFactor = o.SlowBakesBy
			d.event(fmt.Sprintf("error budget of %s low (%.1f%% left, under %.0f%%): bakes take %g× longer", b.SLO, 100*b.Remaining, 100*o.SlowBakesBelow, o.SlowBakesBy))
		}
	}
	return nil
}

// readState learns from the router which slot is live, and from the
// platform what it runs: the target is the other one.
func (d *deployment) readState(ctx workflow.Context) *failure {
	s := &d.in.Spec
	state, err := readState(d.work, activities.ReadStateInput{Who: true})
	if err != nil {
		return &failure{"reading the router and slots", err}
	}
	if state.StartedBy != "" {
		d.st.StartedBy = state.StartedBy
		d.event(fmt.Sprintf("started by %s (verified by Temporal)", state.StartedBy))
	}
	w := state.Weights
	if w.Blue != 0 && w.Green != 0 {
		return &failure{"checking the router", fmt.Errorf(
			"traffic is split (%s): an earlier rollout was interrupted; roll back first (switchyard rollback %s --env %s)", w, s.Name, s.Environment)}
	}
	d.setWeights(ctx, w)
	d.st.Stable = w.Live()
	d.st.Target = d.st.Stable.Other()
	if d.st.Stable == rollout.None {
		d.st.Target = rollout.Blue
		d.event("no live slot: first deployment, to blue")
		return nil
	}
	prev := state.Blue
	if d.st.Stable == rollout.Green {
		prev = state.Green
	}
	d.st.PreviousVersion = prev.Version
	d.event(fmt.Sprintf("live slot %s runs %s; deploying %s to %s", d.st.Stable, orUnknown(prev.Version), d.in.Version, d.st.Target))
	return nil
}

// build makes the version's artifact, where the spec needs one. The spec
// answers from the same input the recorded histories started with, so they
// replay unchanged.
func (d *deployment) build(ctx workflow.Context) *failure {
	s := &d.in.Spec
	if !s.NeedsBuild() {
		return nil
	}
	d.setPhase(ctx, rollout.PhaseBuilding)
	artifact, err := buildArtifact(d.work, s, activities.BuildInput{Version: d.in.Version})
	if err != nil {
		return &failure{"building " + d.in.Version, err}
	}
	d.st.Artifact = artifact
	if d.st.Artifact != "" {
		d.event("built " + d.st.Artifact)
	}
	return nil
}

// gate runs the pre-deployment gates; all run, and any failure stops the
// rollout before a slot is touched.
func (d *deployment) gate(ctx workflow.Context) *failure {
	s := &d.in.Spec
	if !s.HasGates() {
		return nil
	}
	d.setPhase(ctx, rollout.PhaseGating)
	gates, err := runGates(d.work, s, activities.GatesInput{Version: d.in.Version, Artifact: d.st.Artifact})
	for _, c := range gates {
		d.recordCheck(c)
	}
	if err != nil {
		return &failure{"running the gates", err}
	}
	var failed []string
	for _, c := range gates {
		if !c.Passed {
			failed = append(failed, c.Name+": "+c.Detail)
		}
	}
	if len(failed) > 0 {
		return &failure{"gates", fmt.Errorf("%d of %d failed: %s", len(failed), len(gates), strings.Join(failed, "; "))}
	}
	return nil
}

// provision starts the version in the target slot, or finds it running.
func (d *deployment) provision(ctx workflow.Context) *failure {
	s := &d.in.Spec
	d.setPhase(ctx, rollout.PhaseProvisioning)
	inst, err := provisionSlot(d.work, s, activities.ProvisionInput{Slot: d.st.Target, Version: d.in.Version, Artifact: d.st.Artifact,
		Live: d.st.Stable, LiveVersion: d.st.PreviousVersion})
	if err != nil {
		return &failure{"provisioning slot " + string(d.st.Target), err}
	}
	what := ""
	if inst.Summary != "" {
		what = " (" + inst.Summary + ")"
	}
	if inst.Reattached {
		d.event(fmt.Sprintf("slot %s already runs %s%s: kept", d.st.Target, d.in.Version, what))
	} else {
		d.event(fmt.Sprintf("slot %s started %s%s", d.st.Target, d.in.Version, what))
	}
	return nil
}

// expand makes the schema fit the version before it gets traffic: a
// contract that removed what it needs is undone first (or forced through),
// then the expand set runs, once, under the database's lock.
func (d *deployment) expand(ctx workflow.Context) *failure {
	s := &d.in.Spec
	if s.Migrations == nil {
		return nil
	}
	d.setPhase(ctx, rollout.PhaseMigrating)
	steps, err := migrate(d.work, s, activities.SchemaInput{Phase: "expand", Version: d.in.Version, Force: d.in.ForceSchema})
	if err != nil {
		return &failure{"checking and expanding the schema", err}
	}
	d.schemaRan(ctx, steps)
	return nil
}

// schemaRan records migration steps in the status, the events and the
// run's memo (which `history` lists without reading every result).
func (d *deployment) schemaRan(ctx workflow.Context, steps []schema.Step) {
	for _, st := range steps {
		d.st.Schema = append(d.st.Schema, st)
		d.event("schema: " + st.String())
	}
	var memo []string
	for _, st := range d.st.Schema {
		memo = append(memo, fmt.Sprintf("%s (%s, %s)", st, st.LevelText(), st.At.UTC().Format("15:04:05")))
	}
	if len(memo) > 0 {
		if err := workflow.UpsertMemo(ctx, map[string]any{MemoSchema: strings.Join(memo, "; ")}); err != nil {
			d.event("schema memo not written: " + err.Error())
		}
	}
}

// verify runs health, smoke and performance checks on the target slot,
// which has no traffic yet.
func (d *deployment) verify(ctx workflow.Context) *failure {
	s := &d.in.Spec
	d.setPhase(ctx, rollout.PhaseVerifying)
	via := false
	if s.Checks.TestRoute != nil && d.st.Stable != rollout.None {
		// the test route reaches the idle slot through the router before
		// any traffic does (with no live slot yet the router serves nothing)
		if _, err := d.shift(ctx, d.st.Weights, "test route"); err != nil {
			return &failure{"opening the test route", err}
		}
		via = true
	}
	checks, err := verifySlot(d.work, s, activities.VerifyInput{Slot: d.st.Target, Version: d.in.Version, Live: d.st.Stable, ViaRouter: via})
	for _, c := range checks {
		d.recordCheck(c)
	}
	what := "verifying slot " + string(d.st.Target)
	if err != nil {
		return &failure{what, err}
	}
	for _, c := range checks {
		if !c.Passed {
			return &failure{what, errors.New(c.Detail)}
		}
	}
	if d.abort != nil {
		return &failure{"before any traffic moved", errors.New(d.abort.Reason)}
	}
	return nil
}
