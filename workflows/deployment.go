package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// acts names activities through a typed nil pointer: a rename is a compile error.
var acts *activities.Activities

// upgradeProbe is set only in the worker-upgrade test's second build
// (-ldflags "-X github.com/switchyard/switchyard/workflows.upgradeProbe=on"):
// its rollouts begin with a timer the first build's never start, so a
// history from either build fails to replay on the other, as a real
// incompatible change to this workflow would.
var upgradeProbe string

// Deployment rolls a version out to the idle slot and shifts traffic to it in
// steps, each baked and analysed, then promotes it or rolls back.
func Deployment(ctx workflow.Context, in DeploymentInput) (*Status, error) {
	d := &deployment{in: in, root: ctx}
	if err := d.setup(ctx); err != nil {
		return nil, err
	}
	if upgradeProbe != "" {
		if err := workflow.Sleep(ctx, time.Millisecond); err != nil {
			return nil, err
		}
	}
	st, err := d.run(ctx)
	if err != nil && ctx.Err() != nil && !d.st.Phase.Done() {
		// cancelled from the Web UI or `temporal workflow cancel`: never
		// leave traffic split; treat it as an abort
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		d.root = dctx
		if d.st.Stable != rollout.None && d.st.Weights.Of(d.st.Target) > 0 {
			return d.rollback(dctx, "the workflow was cancelled", "temporal")
		}
		return d.fail(dctx, "cancelled", err)
	}
	return st, err
}

type deployment struct {
	in   DeploymentInput
	st   Status
	root workflow.Context
	// work is cancelled by an abort, to stop a probe or analysis in flight.
	work       workflow.Context
	cancelWork workflow.CancelFunc
	abort      *AbortRequest
	// releaseDone: the release this held rollout belongs to is done
	releaseDone bool
	promote     *PromoteRequest
	rolledBack  bool
	// stepSince is when the current step's weights landed; fails counts each
	// metric's failed measurements in the step (for its failureLimit).
	stepSince time.Time
	fails     map[string]int
	// cont is where a continued run picks up (nil once it has); analyses
	// counts this run's analyses, for continuing as new.
	cont     *Continued
	analyses int
}

func (d *deployment) setup(ctx workflow.Context) error {
	s := &d.in.Spec
	now := workflow.Now(ctx)
	d.st = Status{
		Service: s.Name, Environment: s.Environment, Version: d.in.Version, Release: d.in.Release,
		Steps: s.Rollout.Steps, Step: -1, StartedAt: now, UpdatedAt: now,
	}
	if c := d.in.Continued; c != nil {
		d.st, d.fails, d.stepSince, d.cont = c.Status, c.Fails, c.StepSince, c
		if d.fails == nil {
			d.fails = map[string]int{}
		}
	}
	d.work, d.cancelWork = workflow.WithCancel(ctx)
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (*Status, error) { return &d.st, nil }); err != nil {
		return err
	}
	for _, h := range []struct {
		name     string
		validate func() error
		apply    func(r ControlRequest)
	}{
		{Pause, d.canPause, func(r ControlRequest) { d.st.Paused = true; d.event("paused" + r.said()) }},
		{Resume, d.canResume, func(r ControlRequest) { d.st.Paused = false; d.event("resumed" + r.said()) }},
	} {
		h := h
		// The request is optional: an update sent without one (older CLIs,
		// the temporal CLI) decodes as the zero request.
		if err := workflow.SetUpdateHandlerWithOptions(ctx, h.name,
			func(ctx workflow.Context, r ControlRequest) (*Status, error) { h.apply(r); return &d.st, nil },
			workflow.UpdateHandlerOptions{Validator: func(workflow.Context, ControlRequest) error { return h.validate() }},
		); err != nil {
			return err
		}
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, Abort,
		func(ctx workflow.Context, r AbortRequest) (*Status, error) {
			d.requestAbort(r)
			// answer once traffic is back on the stable slot
			err := workflow.Await(ctx, func() bool { return d.rolledBack || d.st.Phase.Done() })
			return &d.st, err
		},
		workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, _ AbortRequest) error { return d.canAbort() }},
	); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, Promote,
		func(ctx workflow.Context, r PromoteRequest) (*Status, error) { d.requestPromote(r); return &d.st, nil },
		workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, _ PromoteRequest) error { return d.canPromote() }},
	); err != nil {
		return err
	}
	// The same controls as Signals, for the Web UI and the temporal CLI: a
	// signal that its update's validator would refuse is recorded and ignored.
	workflow.Go(ctx, d.signals)
	if d.cont != nil {
		d.event(fmt.Sprintf("continued as new (run %d): the bake of step %d goes on, %s left", d.cont.Runs+1, d.st.Step+1, d.cont.Remaining))
		d.upsert(ctx)
		return nil
	}
	if d.in.By != "" {
		d.event(fmt.Sprintf("%s of %s requested by %s", d.in.Version, s.Name, d.in.By))
	}
	d.setPhase(ctx, rollout.PhaseValidating)
	return nil
}

func (d *deployment) signals(ctx workflow.Context) {
	pause := workflow.GetSignalChannel(ctx, Pause)
	resume := workflow.GetSignalChannel(ctx, Resume)
	abort := workflow.GetSignalChannel(ctx, Abort)
	promote := workflow.GetSignalChannel(ctx, Promote)
	releaseDone := workflow.GetSignalChannel(ctx, ReleaseDone)
	ignored := func(name string, err error) { d.event(fmt.Sprintf("signal %s ignored: %v", name, err)) }
	for {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(pause, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			if err := d.canPause(); err != nil {
				ignored(Pause, err)
				return
			}
			d.st.Paused = true
			d.event("paused (signal)")
		})
		sel.AddReceive(resume, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			if err := d.canResume(); err != nil {
				ignored(Resume, err)
				return
			}
			d.st.Paused = false
			d.event("resumed (signal)")
		})
		sel.AddReceive(abort, func(c workflow.ReceiveChannel, _ bool) {
			var r AbortRequest
			c.Receive(ctx, &r)
			if err := d.canAbort(); err != nil {
				ignored(Abort, err)
				return
			}
			if r.By == "" {
				r.By = "signal"
			}
			d.requestAbort(r)
		})
		sel.AddReceive(promote, func(c workflow.ReceiveChannel, _ bool) {
			var r PromoteRequest
			c.Receive(ctx, &r)
			if err := d.canPromote(); err != nil {
				ignored(Promote, err)
				return
			}
			d.requestPromote(r)
		})
		sel.AddReceive(releaseDone, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			if !d.in.Hold {
				d.event("signal " + ReleaseDone + " ignored: this rollout is not held by a release")
				return
			}
			d.releaseDone = true
		})
		sel.Select(ctx)
	}
}

func (d *deployment) canPause() error {
	switch {
	case d.st.Phase.Done() || d.abort != nil:
		return fmt.Errorf("the rollout is %s; nothing to pause", d.phaseWord())
	case d.st.Paused:
		return errors.New("already paused (resume it with: switchyard resume)")
	case d.st.Phase == rollout.PhaseScalingDown || d.st.Phase == rollout.PhaseRetiring:
		return errors.New("already promoted; nothing to pause")
	}
	return nil
}

func (d *deployment) canResume() error {
	if !d.st.Paused {
		return errors.New("not paused")
	}
	if d.st.Phase.Done() || d.abort != nil {
		return fmt.Errorf("the rollout is %s", d.phaseWord())
	}
	return nil
}

func (d *deployment) canAbort() error {
	switch {
	case d.abort != nil:
		return fmt.Errorf("already aborting (%s)", d.abort.Reason)
	case d.st.Phase.Done():
		return fmt.Errorf("the rollout is already %s", d.st.Phase)
	case d.st.Phase == rollout.PhaseRetiring:
		return errors.New("the old slot is being retired; to go back, deploy the previous version again")
	}
	return nil
}

func (d *deployment) canPromote() error {
	if d.st.Phase != rollout.PhaseShifting {
		return fmt.Errorf("only a rollout that is shifting traffic can be promoted (phase: %s)", d.st.Phase)
	}
	if d.abort != nil {
		return errors.New("the rollout is aborting")
	}
	if d.promote != nil && d.promote.Full {
		return errors.New("already promoting to 100%")
	}
	return nil
}

func (d *deployment) phaseWord() string {
	if d.abort != nil && !d.st.Phase.Done() {
		return "aborting"
	}
	return string(d.st.Phase)
}

func (d *deployment) requestAbort(r AbortRequest) {
	if strings.TrimSpace(r.Reason) == "" {
		r.Reason = "aborted"
	}
	d.abort = &r
	d.event(fmt.Sprintf("abort requested by %s: %s", orUnknown(r.By), r.Reason))
	d.cancelWork()
}

func (d *deployment) requestPromote(r PromoteRequest) {
	d.promote = &r
	if r.Full {
		d.event(fmt.Sprintf("promote to 100%% requested by %s", orUnknown(r.By)))
	} else {
		d.event(fmt.Sprintf("skip of the current bake requested by %s", orUnknown(r.By)))
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func (d *deployment) event(msg string) {
	now := workflow.Now(d.root)
	d.st.Events = append(d.st.Events, Event{At: now, Message: msg})
	if n := len(d.st.Events); n > MaxEvents {
		d.st.EventsDropped += n - MaxEvents
		d.st.Events = slices.Clone(d.st.Events[n-MaxEvents:])
	}
	d.st.UpdatedAt = now
}

// setPhase is the one place a phase changes: the Query and the search
// attributes can never disagree.
func (d *deployment) setPhase(ctx workflow.Context, p rollout.Phase) {
	d.st.Phase = p
	d.event("phase " + string(p))
	d.upsert(ctx)
}

func (d *deployment) upsert(ctx workflow.Context) {
	upsertRun(ctx, d.st.Service, d.st.Environment, d.st.Version, d.st.Phase, d.st.Traffic())
}

func (d *deployment) recordCheck(r rollout.CheckResult) {
	for i, c := range d.st.Checks {
		if c.Name == r.Name && c.Slot == r.Slot {
			d.st.Checks[i] = r
			return
		}
	}
	d.st.Checks = append(d.st.Checks, r)
}

// run is the rollout, phase by phase. A phase before any traffic moves
// fails the rollout with the live slot untouched; from the first shift on,
// a problem rolls back.
func (d *deployment) run(ctx workflow.Context) (*Status, error) {
	if d.cont != nil {
		if err := holdService(ctx, d.in.Spec.Name, d.in.Spec.Environment, 10*time.Second); err != nil {
			// another writer took the service between two runs: it owns the
			// traffic now, so this rollout leaves the router alone
			d.st.Reason = "taking the service again after continuing as new: " + rootMessage(err)
			d.event("failed " + d.st.Reason + "; the router is left to the writer that holds the service")
			d.setPhase(ctx, rollout.PhaseFailed)
			return nil, temporal.NewNonRetryableApplicationError(d.st.Reason, ErrFailed, nil, &d.st)
		}
		return d.shiftAndPromote(ctx)
	}
	for _, phase := range []func(workflow.Context) *failure{d.checkInput, d.hold, d.window, d.readState, d.build, d.gate, d.provision, d.verify} {
		if f := phase(ctx); f != nil {
			return d.fail(ctx, f.what, f.err)
		}
	}
	return d.shiftAndPromote(ctx)
}

func (d *deployment) shiftAndPromote(ctx workflow.Context) (*Status, error) {
	if st, err := d.shiftSteps(ctx); st != nil || err != nil {
		return st, err
	}
	return d.promoteAndRetire(ctx)
}

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

// verify runs health, smoke and performance checks on the target slot,
// which has no traffic yet.
func (d *deployment) verify(ctx workflow.Context) *failure {
	s := &d.in.Spec
	d.setPhase(ctx, rollout.PhaseVerifying)
	checks, err := verifySlot(d.work, s, activities.VerifyInput{Slot: d.st.Target, Version: d.in.Version, Live: d.st.Stable})
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
		base, bake := cont.resumeBase(i), s.Rollout.Bake.D()
		if base != nil {
			bake = cont.Remaining // the traffic is where the last run left it
		} else {
			var err error
			if base, err = d.shift(ctx, rollout.Split(d.st.Target, pct), fmt.Sprintf("step %d/%d", i+1, len(steps))); err != nil {
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
		if delay > 0 {
			d.event(fmt.Sprintf("promoted; slot %s kept warm for %s for an instant rollback", prev, delay))
			ok, err := workflow.AwaitWithTimeout(ctx, delay, func() bool { return d.abort != nil })
			if err != nil {
				return nil, err
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
	d.setPhase(ctx, rollout.PhasePromoted)
	countOutcome(ctx, "deployment", s.Name, s.Environment, "promoted")
	notifyEvent(ctx, s, fmt.Sprintf("%s promoted (previous %s)", d.in.Version, orUnknown(d.st.PreviousVersion)), "")
	return &d.st, workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

// setWeights records the router's weights, and in the timeline when they changed.
func (d *deployment) setWeights(ctx workflow.Context, w rollout.Weights) {
	d.st.Weights = w
	if n := len(d.st.Timeline); n == 0 || d.st.Timeline[n-1].Weights != w {
		d.st.Timeline = append(d.st.Timeline, WeightChange{At: workflow.Now(ctx), Weights: w})
	}
}

// shift applies an absolute split and returns the counters at that moment.
func (d *deployment) shift(ctx workflow.Context, w rollout.Weights, label string) (*activities.ShiftResult, error) {
	res, err := shiftTraffic(ctx, &d.in.Spec, activities.ShiftInput{Weights: w})
	if err != nil {
		return nil, err
	}
	d.setWeights(ctx, res.Weights)
	d.st.AnalysisSource = res.Source
	d.stepSince, d.fails = workflow.Now(ctx), map[string]int{}
	d.event(fmt.Sprintf("%s: %s", label, res.Weights))
	d.upsert(ctx)
	return &res, nil
}

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
	res, err := analyzeSlot(d.work, s, activities.AnalyzeInput{Slot: d.st.Target, Baseline: base.Counters, Version: d.in.Version,
		LiveVersion: d.st.PreviousVersion, Since: d.stepSince, Weight: d.st.Weights.Of(d.st.Target)})
	if d.abort != nil {
		return ""
	}
	if err != nil {
		return "analysis could not run: " + err.Error()
	}
	d.recordCheck(res)
	d.st.AnalysisSource = res.Source
	at := fmt.Sprint(d.st.Weights.Of(d.st.Target)) + "%"
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
	d.event(fmt.Sprintf("analysis at %d%%: %s", d.st.Weights.Of(d.st.Target), strings.Join(parts, "; ")))
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
		limit := 0
		for _, sm := range d.in.Spec.Rollout.Analysis.Metrics {
			if sm.Name == m.Metric {
				limit = sm.FailureLimit
			}
		}
		if d.fails[m.Metric] > limit {
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
		StartToCloseTimeout: s.Rollout.Bake.D() + 31*time.Minute,
		HeartbeatTimeout:    5 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3, NonRetryableErrorTypes: []string{activities.ErrBadInput}},
	})
	f := workflow.ExecuteActivity(wctx, acts.Watch, activities.WatchInput{Slot: d.st.Target, Baseline: base.Counters,
		For: s.Rollout.Bake.D() + 30*time.Minute})
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
		return nil, temporal.NewNonRetryableApplicationError("rolled back: "+reason, ErrRolledBack, nil, &d.st)
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
	return nil, temporal.NewNonRetryableApplicationError("rolled back: "+reason, ErrRolledBack, nil, &d.st)
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
	return nil, temporal.NewNonRetryableApplicationError(reason, ErrFailed, nil, &d.st)
}

// rootMessage drops the SDK's wrapping ("activity error (type: ...)") and
// keeps what the activity said.
func rootMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		return "canceled"
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return "timed out (" + timeout.TimeoutType().String() + ")"
	}
	return err.Error()
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
