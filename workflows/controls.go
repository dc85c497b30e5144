package workflows

import (
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/internal/rollout"
)

// controls are a run's ways to be steered, each registered as an Update
// (which the CLI and the dashboard send, and which answers) and as a Signal
// (the Web UI's and the temporal CLI's), handled one way in the Deployment,
// Rollback and Release workflows: the Update's validator refuses what the
// Signal records as ignored, and both make the one same change.
type controls struct {
	ctx     workflow.Context
	signals []func(workflow.Context, workflow.Selector)
	ignored func(name string, err error)
}

// signalled is a request that came as a Signal: recorded as sent by
// "signal" unless it names someone.
type signalled interface{ fromSignal() }

func (r *ControlRequest) fromSignal()  { r.By = orDefault(r.By, "signal") }
func (r *AbortRequest) fromSignal()    { r.By = orDefault(r.By, "signal") }
func (r *PromoteRequest) fromSignal()  { r.By = orDefault(r.By, "signal") }
func (r *ApprovalRequest) fromSignal() { r.By = orDefault(r.By, "signal") }

// control registers name as an Update and a Signal carrying an R. The
// Update answers status once answer returns (nil: at once, after apply).
func control[R, S any](c *controls, name string, status func() S, validate func(R) error, apply func(R), answer func(workflow.Context, R) error) error {
	if err := workflow.SetUpdateHandlerWithOptions(c.ctx, name,
		func(ctx workflow.Context, r R) (S, error) {
			apply(r)
			var err error
			if answer != nil {
				err = answer(ctx, r)
			}
			return status(), err
		},
		// the request is optional: an update sent without one (older
		// CLIs, the temporal CLI) decodes as the zero request
		workflow.UpdateHandlerOptions{Validator: func(_ workflow.Context, r R) error { return validate(r) }},
	); err != nil {
		return err
	}
	c.signal(name, func(ctx workflow.Context, ch workflow.ReceiveChannel) {
		var r R
		ch.Receive(ctx, &r)
		if s, ok := any(&r).(signalled); ok {
			s.fromSignal()
		}
		if err := validate(r); err != nil {
			c.ignored(name, err)
			return
		}
		apply(r)
	})
	return nil
}

// signal listens to a Signal that has no Update.
func (c *controls) signal(name string, on func(workflow.Context, workflow.ReceiveChannel)) {
	c.signals = append(c.signals, func(ctx workflow.Context, sel workflow.Selector) {
		sel.AddReceive(workflow.GetSignalChannel(ctx, name), func(ch workflow.ReceiveChannel, _ bool) { on(ctx, ch) })
	})
}

// listen handles the Signals for the run's life, in the order registered
// (the order a selector picks ready channels in: it must not change).
func (c *controls) listen() {
	workflow.Go(c.ctx, func(ctx workflow.Context) {
		sel := workflow.NewSelector(ctx)
		for _, add := range c.signals {
			add(ctx, sel)
		}
		for {
			sel.Select(ctx)
		}
	})
}

// steer registers the rollout's controls: pause, resume, abort, promote,
// and the release's word that it is done with a held rollout.
func (d *deployment) steer(ctx workflow.Context) error {
	c := &controls{ctx: ctx, ignored: func(name string, err error) { d.event(fmt.Sprintf("signal %s ignored: %v", name, err)) }}
	status := func() *Status { return &d.st }
	if err := control(c, Pause, status, func(ControlRequest) error { return d.canPause() },
		func(r ControlRequest) { d.st.Paused = true; d.event("paused" + r.said()) }, nil); err != nil {
		return err
	}
	if err := control(c, Resume, status, func(ControlRequest) error { return d.canResume() },
		func(r ControlRequest) { d.st.Paused = false; d.event("resumed" + r.said()) }, nil); err != nil {
		return err
	}
	// an abort answers once traffic is back on the stable slot
	if err := control(c, Abort, status, func(AbortRequest) error { return d.canAbort() }, d.requestAbort,
		func(ctx workflow.Context, _ AbortRequest) error {
			return workflow.Await(ctx, func() bool { return d.rolledBack || d.st.Phase.Done() })
		}); err != nil {
		return err
	}
	// a promote answers once the weights moved, or nothing will move: paused,
	// aborting, or past shifting (the last bake skipped)
	if err := control(c, Promote, status, func(PromoteRequest) error { return d.canPromote() }, d.requestPromote,
		func(ctx workflow.Context, _ PromoteRequest) error {
			if workflow.GetVersion(ctx, "promote-answers-when-moved", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
				return nil
			}
			// the next step is in force once its weights, or its routes (a
			// mirror or header step keeps the weights), are applied; a spec
			// without routes has nil ones throughout, as its histories did
			before, routes := d.st.Weights, d.st.Routes
			return workflow.Await(ctx, func() bool {
				return d.st.Weights != before || d.st.Routes != routes || d.st.Paused || d.abort != nil || d.st.Phase != rollout.PhaseShifting
			})
		}); err != nil {
		return err
	}
	c.signal(ReleaseDone, func(ctx workflow.Context, ch workflow.ReceiveChannel) {
		ch.Receive(ctx, nil)
		if !d.in.Hold {
			d.event("signal " + ReleaseDone + " ignored: this rollout is not held by a release")
			return
		}
		d.releaseDone = true
	})
	c.listen()
	return nil
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
