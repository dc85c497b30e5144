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
)

// Rollback takes a service back to its previous slot: at once (immediate),
// over a duration on durable timers (gradual), or by flipping the whole
// environment and keeping the bad slot for investigation (swap).
func Rollback(ctx workflow.Context, in RollbackInput) (*RollbackReport, error) {
	r := &rollbackRun{in: in, root: ctx}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

type rollbackRun struct {
	in        RollbackInput
	rep       RollbackReport
	root      workflow.Context
	escalated bool
}

func (r *rollbackRun) setup(ctx workflow.Context) error {
	in := r.in
	r.rep = RollbackReport{
		Service: in.Spec.Name, Environment: in.Spec.Environment, Strategy: in.Strategy, Reason: in.Reason,
		By: orUnknown(in.By), From: in.From, To: in.To, BadVersion: in.BadVersion, PreviousVersion: in.PreviousVersion,
		StartedAt: workflow.Now(ctx),
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (*RollbackReport, error) { return &r.rep, nil }); err != nil {
		return err
	}
	c := &controls{ctx: ctx, ignored: func(name string, err error) { r.event(fmt.Sprintf("signal %s ignored: %v", name, err)) }}
	status := func() *RollbackReport { return &r.rep }
	if err := control(c, Pause, status, func(ControlRequest) error { return r.canPause() },
		func(q ControlRequest) { r.rep.Paused = true; r.event("paused" + q.said()) }, nil); err != nil {
		return err
	}
	if err := control(c, Resume, status, func(ControlRequest) error { return r.canResume() },
		func(q ControlRequest) { r.rep.Paused = false; r.event("resumed" + q.said()) }, nil); err != nil {
		return err
	}
	// an escalation answers once all traffic is back
	if err := control(c, Escalate, status, func(ControlRequest) error { return r.canEscalate() },
		func(q ControlRequest) { r.escalated = true; r.event("escalated to immediate" + q.said()) },
		func(ctx workflow.Context, _ ControlRequest) error {
			return workflow.Await(ctx, func() bool { return r.rep.Phase.Done() })
		}); err != nil {
		return err
	}
	c.listen()
	r.setPhase(ctx, rollout.PhaseRollingBack)
	return nil
}

func (r *rollbackRun) canPause() error {
	switch {
	case r.in.Strategy != Gradual:
		return fmt.Errorf("only a gradual rollback can be paused (this one is %s)", r.in.Strategy)
	case r.rep.Phase.Done():
		return fmt.Errorf("the rollback is already %s", r.rep.Phase)
	case r.rep.Paused:
		return errors.New("already paused")
	case r.escalated:
		return errors.New("escalated to immediate")
	}
	return nil
}

func (r *rollbackRun) canResume() error {
	if !r.rep.Paused {
		return errors.New("not paused")
	}
	return nil
}

func (r *rollbackRun) canEscalate() error {
	switch {
	case r.in.Strategy != Gradual:
		return fmt.Errorf("a %s rollback is immediate already", r.in.Strategy)
	case r.rep.Phase.Done():
		return fmt.Errorf("the rollback is already %s", r.rep.Phase)
	case r.escalated:
		return errors.New("already escalated")
	}
	return nil
}

func (r *rollbackRun) event(msg string) {
	r.rep.Events = append(r.rep.Events, Event{At: workflow.Now(r.root), Message: msg})
}

func (r *rollbackRun) setPhase(ctx workflow.Context, p rollout.Phase) {
	r.rep.Phase = p
	r.event("phase " + string(p))
	r.upsert(ctx)
}

func (r *rollbackRun) upsert(ctx workflow.Context) {
	upsertRun(ctx, r.rep.Service, r.rep.Environment, r.rep.PreviousVersion, r.rep.Phase, r.rep.Weights.Of(r.in.To))
}

func (r *rollbackRun) applied(ctx workflow.Context, res *activities.ShiftResult) {
	r.rep.Weights = res.Weights
	r.rep.Timeline = append(r.rep.Timeline, WeightChange{At: workflow.Now(ctx), Weights: res.Weights})
	r.event("weights " + res.Weights.String())
	r.upsert(ctx)
}

func (r *rollbackRun) fail(ctx workflow.Context, msg string) (*RollbackReport, error) {
	r.rep.Error = msg
	r.rep.EndedAt = workflow.Now(ctx)
	r.event("failed: " + msg)
	r.setPhase(ctx, rollout.PhaseFailed)
	countOutcome(ctx, "rollback", r.rep.Service, r.rep.Environment, "failed")
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	return nil, ErrFailed.end(msg, &r.rep)
}

func (r *rollbackRun) run(ctx workflow.Context) (*RollbackReport, error) {
	s := &r.in.Spec
	r.event(fmt.Sprintf("%s rollback of %s to slot %s (%s) requested by %s: %s",
		r.in.Strategy, s.Name, r.in.To, r.in.PreviousVersion, r.rep.By, r.in.Reason))
	// the service's writer lock, taken while the state is read: nothing
	// moves until it is held (a rollback that took over from the rollout
	// it aborted waits for that rollout to close)
	locked, setLocked := workflow.NewFuture(ctx)
	if workflow.GetVersion(ctx, "service-lock", workflow.DefaultVersion, 1) == 1 {
		workflow.Go(ctx, func(gctx workflow.Context) {
			wait := time.Duration(0)
			if r.in.Handoff {
				wait = 30 * time.Second
			}
			setLocked.Set(nil, holdService(gctx, s.Name, s.Environment, wait))
		})
	} else {
		setLocked.Set(nil, nil)
	}
	var state activities.State
	var read workflow.Future
	// v1 reads the state as a local activity: one round trip less on the
	// way to an immediate rollback (histories before it used an activity)
	if workflow.GetVersion(ctx, "rollback-read-state-locally", workflow.DefaultVersion, 1) == 1 {
		read = workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: 30 * time.Second,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, MaximumAttempts: 5,
				NonRetryableErrorTypes: []string{activities.ErrBadInput}},
		}), acts.ReadState, activities.ReadStateInput{})
	} else {
		read = startReadState(ctx, activities.ReadStateInput{})
	}
	readErr := read.Get(ctx, &state)
	if err := locked.Get(ctx, nil); err != nil {
		return r.fail(ctx, "taking the service: "+rootMessage(err))
	}
	if readErr != nil {
		return r.fail(ctx, "reading the router and slots: "+rootMessage(readErr))
	}
	r.rep.Weights = state.Weights
	prev := state.Blue
	if r.in.To == rollout.Green {
		prev = state.Green
	}
	bad := state.Green
	if r.in.From == rollout.Blue {
		bad = state.Blue
	}
	r.rep.BadSlotAddr = bad.Addr
	switch {
	case state.Weights.Of(r.in.To) == 100:
		return r.fail(ctx, fmt.Sprintf("nothing to roll back: slot %s (%s) already has all traffic (%s)", r.in.To, orUnknown(prev.Version), state.Weights))
	case !prev.Running || (r.in.PreviousVersion != "" && prev.Version != r.in.PreviousVersion):
		return r.fail(ctx, fmt.Sprintf("the previous slot %s no longer runs %s (it is retired once the scale-down delay ends); to go back, deploy it again: switchyard deploy %s --env %s --version %s",
			r.in.To, r.in.PreviousVersion, s.Name, s.Environment, r.in.PreviousVersion))
	}

	if r.in.Strategy == Gradual {
		if err := r.gradual(ctx); err != nil {
			return nil, err
		}
	}
	if r.rep.Weights.Of(r.in.To) != 100 {
		res, err := rollbackNow(ctx, r.in.To)
		if err != nil {
			return r.fail(ctx, "shifting back: "+rootMessage(err))
		}
		r.applied(ctx, res)
	}
	switch {
	case r.in.Strategy == Swap:
		r.event(fmt.Sprintf("slot %s (%s) keeps running untouched at %s for investigation; retire it with: switchyard retire %s --env %s",
			r.in.From, r.in.BadVersion, r.rep.BadSlotAddr, s.Name, s.Environment))
	case s.Rollout.RetireOnFailure:
		if err := retireSlot(ctx, s, activities.RetireInput{Slot: r.in.From}); err != nil {
			r.event("retiring slot " + string(r.in.From) + " failed: " + rootMessage(err))
		} else {
			r.event("retired slot " + string(r.in.From))
		}
	default:
		r.event(fmt.Sprintf("slot %s left running for inspection", r.in.From))
	}
	r.rep.EndedAt = workflow.Now(ctx)
	r.rep.NextStepAt, r.rep.Remaining = time.Time{}, 0
	r.setPhase(ctx, rollout.PhaseRolledBack)
	countOutcome(ctx, "rollback", s.Name, s.Environment, "rolled-back")
	recordRollback(ctx, &r.rep)
	notifyEvent(ctx, s, fmt.Sprintf("%s rollback from %s to %s by %s: %s", r.in.Strategy, r.in.BadVersion, r.in.PreviousVersion, r.rep.By, r.in.Reason),
		fmt.Sprintf("took %s, %d weight changes, now %s", r.rep.Duration(), len(r.rep.Timeline), r.rep.Weights))
	return &r.rep, workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

// gradual walks the bad slot's share down the configured steps, one every
// duration/len(steps), so the last lands exactly at the duration. Pausing
// stops the clock; escalating ends the walk (the caller then goes to 100 %).
func (r *rollbackRun) gradual(ctx workflow.Context) error {
	s := &r.in.Spec
	g := s.Rollback.Gradual
	cur := r.rep.Weights.Of(r.in.From)
	var steps []int
	for _, st := range g.Steps {
		if st < cur { // never give the bad slot more than it has
			steps = append(steps, st)
		}
	}
	if len(steps) == 0 {
		return nil
	}
	interval := g.Duration.D() / time.Duration(len(steps))
	r.event(fmt.Sprintf("gradual: %v%% on slot %s, one step every %s", steps, r.in.From, interval))
	r.rep.Remaining = g.Duration.D()
	var base map[rollout.Slot]rollout.Counters
	for _, pct := range steps {
		_, err := countdown{
			paused: func() bool { return r.rep.Paused },
			stop:   func() bool { return r.escalated },
			ends:   func(at time.Time) { r.rep.NextStepAt = at },
			spent:  func(d time.Duration) { r.rep.Remaining -= d },
		}.run(ctx, interval)
		if err != nil {
			return err
		}
		if r.escalated {
			return nil
		}
		if base != nil || len(r.rep.Timeline) > 0 {
			// the previous slot took more since the last step: judge it on what it served
			if chk, err := analyzeSlot(ctx, s, activities.AnalyzeInput{Slot: r.in.To, Baseline: base}); err == nil {
				r.rep.Checks = append(r.rep.Checks, chk)
				if !chk.Passed {
					r.event("previous slot analysis: " + chk.Detail + " (going on: it is the way back)")
				}
			}
		}
		res, err := shiftTraffic(ctx, s, activities.ShiftInput{Weights: rollout.Split(r.in.From, pct)})
		if err != nil {
			return err
		}
		r.applied(ctx, &res)
		base = res.Counters
	}
	return nil
}

// ValidStrategy checks a strategy name and returns it normalised.
func ValidStrategy(s string) (Strategy, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	var names []string
	for _, k := range Strategies {
		if s == string(k) {
			return k, nil
		}
		names = append(names, string(k))
	}
	return "", fmt.Errorf("unknown strategy %q (use %s)", s, strings.Join(names, ", "))
}

// Retire stops one slot on the worker that runs the service's slots, after
// the activity has checked the router sends it no traffic.
func Retire(ctx workflow.Context, in activities.RetireInput) error {
	return retireSlot(ctx, in.Spec, in)
}
