package starter

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/workflows"
)

type runningRB struct {
	runID string
	rep   workflows.RollbackReport
}

// runningRollback returns the service's rollback if one is running.
func (s *Starter) runningRollback(ctx context.Context, service, env string) *runningRB {
	id := workflows.RollbackID(service, env)
	d, err := s.C.DescribeWorkflowExecution(ctx, id, "")
	if err != nil || d.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return nil
	}
	rb := &runningRB{runID: d.WorkflowExecutionInfo.Execution.RunId}
	if v, err := s.C.QueryWorkflow(ctx, id, "", workflows.QueryStatus); err == nil {
		_ = v.Get(&rb.rep)
	}
	return rb
}

// RollbackRunning says whether the service has a rollback running.
func (s *Starter) RollbackRunning(ctx context.Context, service, env string) bool {
	return s.runningRollback(ctx, service, env) != nil
}

// Rollback starts a Rollback workflow. A rollout in progress is first
// stopped without touching the router (its Update answers once it has
// stopped writing), so the rollback is the one writer from then on.
func (s *Starter) Rollback(ctx context.Context, svc *spec.Service, name workflows.Strategy, reason, by string) (client.WorkflowRun, error) {
	strategy, err := workflows.ValidStrategy(string(name))
	if err != nil {
		return nil, &BadInputError{err}
	}
	if strategy == workflows.Gradual && !svc.Router.Kind.CanSplit() {
		return nil, &BadInputError{fmt.Errorf("--strategy gradual: the %s router flips all traffic at once and cannot split traffic; use immediate or swap, or a router that splits (gateway-api)", svc.Router.Kind)}
	}
	if rb := s.runningRollback(ctx, svc.Name, svc.Environment); rb != nil {
		return nil, &AlreadyRunningError{WorkflowID: workflows.RollbackID(svc.Name, svc.Environment), RunID: rb.runID,
			What: fmt.Sprintf("a %s rollback is already running (started by %s: %s); watch it with: switchyard watch %s --env %s",
				rb.rep.Strategy, rb.rep.By, rb.rep.Reason, svc.Name, svc.Environment)}
	}
	st, err := s.Status(ctx, svc.Name, svc.Environment)
	if err != nil {
		return nil, &BadInputError{fmt.Errorf("rollback: %s in %s was never deployed: nothing to go back to", svc.Name, svc.Environment)}
	}
	handoff := !st.Phase.Done()
	if handoff {
		st, err = s.Control(ctx, svc.Name, svc.Environment, workflows.Abort,
			workflows.AbortRequest{Reason: fmt.Sprintf("taken over by a %s rollback: %s", strategy, reason), By: by, Handoff: true})
		if err != nil {
			return nil, err
		}
	}
	if st.PreviousVersion == "" || st.Target == rollout.None {
		return nil, &BadInputError{fmt.Errorf("rollback: no previous slot: the last rollout of %s (%s) was its first deployment", svc.Name, st.Version)}
	}
	in := workflows.RollbackInput{Spec: *svc, Strategy: strategy, Reason: reason, By: by,
		From: st.Target, To: st.Target.Other(), BadVersion: st.Version, PreviousVersion: st.PreviousVersion, Handoff: handoff}
	id := workflows.RollbackID(svc.Name, svc.Environment)
	run, err := s.C.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: s.TaskQueue, WorkflowTaskTimeout: WorkflowTaskTimeout,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.RunAttributes(svc.Name, svc.Environment, st.PreviousVersion, rollout.PhaseRollingBack, st.Weights.Of(in.To))...),
	}, workflows.RollbackWorkflow, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil, &AlreadyRunningError{WorkflowID: id, RunID: started.RunId, What: "a rollback is already running"}
	}
	if err != nil {
		return nil, fmt.Errorf("rollback: start workflow %s: %w", id, err)
	}
	return run, nil
}

// BadInputError is a request that cannot be carried out as asked.
type BadInputError struct{ Err error }

func (e *BadInputError) Error() string { return e.Err.Error() }
func (e *BadInputError) Unwrap() error { return e.Err }

// RollbackStatus queries the service's latest rollback.
func (s *Starter) RollbackStatus(ctx context.Context, service, env string) (*workflows.RollbackReport, error) {
	v, err := s.C.QueryWorkflow(ctx, workflows.RollbackID(service, env), "", workflows.QueryStatus)
	if err != nil {
		return nil, err
	}
	var rep workflows.RollbackReport
	return &rep, v.Get(&rep)
}

// RollbackControl sends pause, resume or escalate to the running rollback.
func (s *Starter) RollbackControl(ctx context.Context, service, env, name string, req workflows.ControlRequest) (*workflows.RollbackReport, error) {
	var rep workflows.RollbackReport
	if err := s.update(ctx, workflows.RollbackID(service, env), name, []any{req}, &rep); err != nil {
		return nil, controlError(service, env, name, err)
	}
	return &rep, nil
}

// WaitRollback waits for a rollback to end and returns its report.
func (s *Starter) WaitRollback(ctx context.Context, run client.WorkflowRun) (*workflows.RollbackReport, error) {
	var rep workflows.RollbackReport
	err := run.Get(ctx, &rep)
	if err == nil {
		return &rep, nil
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.HasDetails() {
		if app.Details(&rep) == nil {
			return &rep, &BadInputError{errors.New(app.Message())}
		}
	}
	return nil, err
}

// Retire stops a slot that has no traffic, on a worker.
func (s *Starter) Retire(ctx context.Context, svc *spec.Service, slot rollout.Slot) error {
	run, err := s.C.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.RetireID(svc.Name, svc.Environment), TaskQueue: s.TaskQueue,
		WorkflowExecutionTimeout: 5 * time.Minute,
	}, workflows.RetireWorkflow, activities.RetireInput{Spec: svc, Slot: slot})
	if err != nil {
		return err
	}
	if err := run.Get(ctx, nil); err != nil {
		var app *temporal.ApplicationError
		if errors.As(err, &app) {
			return &BadInputError{errors.New(app.Message())}
		}
		return err
	}
	return nil
}
