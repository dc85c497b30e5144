package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/rollout"
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
	// guardBase is the counters at the last traffic change or guard
	// judgement: the baseline of the guard's next one.
	guardBase map[rollout.Slot]rollout.Counters
	// bakeFactor slows the bakes while an error budget is low (1: as written).
	bakeFactor float64
}

func (d *deployment) setup(ctx workflow.Context) error {
	s := &d.in.Spec
	now := workflow.Now(ctx)
	d.st = Status{
		Service: s.Name, Environment: s.Environment, Version: d.in.Version, Release: d.in.Release,
		Steps: s.Rollout.Steps, Step: -1, StartedAt: now, UpdatedAt: now, RequestedBy: d.in.By, CommitTime: d.in.CommitTime,
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
	if err := d.steer(ctx); err != nil {
		return err
	}
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
			return nil, ErrFailed.end(d.st.Reason, &d.st)
		}
		return d.shiftAndPromote(ctx)
	}
	for _, phase := range []func(workflow.Context) *failure{d.checkInput, d.hold, d.window, d.budget, d.readState, d.build, d.gate, d.provision, d.expand, d.verify} {
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
