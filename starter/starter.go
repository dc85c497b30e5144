// Package starter is the client side of Switchyard: what the CLI and CI use
// to start rollouts, control them and read their state.
package starter

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/switchyard/switchyard/internal/compose"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/workflows"
)

// Starter talks to Temporal for one namespace and task queue.
type Starter struct {
	C         client.Client
	TaskQueue string
	// monitors caches the overview's read of the monitoring runs.
	monitors monitorCache
}

// ResolveSpec loads a spec file and resolves one environment. The spec's
// directory becomes absolute, since the worker may run elsewhere.
func ResolveSpec(path, env string) (*spec.Service, error) {
	f, err := spec.Load(path)
	if err != nil {
		return nil, err
	}
	s, err := f.Resolve(env)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	s.Dir = abs
	// a Compose file is read again on the worker, with its environment;
	// read here too, so a broken one is refused before anything starts
	if s.Docker.Compose != nil && s.Platform == spec.PlatformDocker {
		if _, err := compose.LoadFor(s); err != nil {
			return nil, &BadInputError{err}
		}
	}
	return s, nil
}

// AlreadyRunningError says a rollout of the service is in progress.
type AlreadyRunningError struct {
	WorkflowID, RunID string
	Status            *workflows.Status
	What              string // set for a rollback in the way
}

func (e *AlreadyRunningError) Error() string {
	if e.What != "" {
		return fmt.Sprintf("refused: workflow %s (run %s): %s", e.WorkflowID, e.RunID, e.What)
	}
	msg := fmt.Sprintf("a rollout is already running: workflow %s (run %s)", e.WorkflowID, e.RunID)
	if st := e.Status; st != nil {
		msg += fmt.Sprintf(", version %s, phase %s, %d%% traffic", st.Version, st.Phase, st.Traffic())
		if st.Release != "" {
			msg += fmt.Sprintf("; it is part of release %s, which owns it (switchyard release status %s)", st.Release, st.Release)
			return msg
		}
		msg += fmt.Sprintf("; wait for it (switchyard watch %s --env %s) or abort it (switchyard abort %s --env %s --reason ...)",
			st.Service, st.Environment, st.Service, st.Environment)
	}
	return msg
}

// Deploy starts a rollout. It fails at once, naming the running one, when
// the service already has a rollout in progress in that environment.
func (s *Starter) Deploy(ctx context.Context, svc *spec.Service, version, by string, o DeployOptions) (client.WorkflowRun, error) {
	if err := spec.CheckVersion(version); err != nil {
		return nil, &BadInputError{fmt.Errorf("deploy: %w", err)}
	}
	if err := s.checkCalendar(ctx, svc, &o); err != nil {
		return nil, err
	}
	emergency := ""
	if o.Emergency != nil {
		emergency = o.Emergency.Reason
		by += " (emergency: " + emergency + ")"
	}
	if rb := s.runningRollback(ctx, svc.Name, svc.Environment); rb != nil {
		return nil, &AlreadyRunningError{WorkflowID: workflows.RollbackID(svc.Name, svc.Environment), RunID: rb.runID,
			What: fmt.Sprintf("a %s rollback to %s is running; deploy once it ends (switchyard watch %s --env %s)", rb.rep.Strategy, rb.rep.PreviousVersion, svc.Name, svc.Environment)}
	}
	id := workflows.DeploymentID(svc.Name, svc.Environment)
	run, err := s.C.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                s.TaskQueue,
		WorkflowTaskTimeout:      WorkflowTaskTimeout,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// without it the SDK quietly returns the running rollout instead
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.RunAttributes(svc.Name, svc.Environment, version, rollout.PhaseValidating, 0)...),
	}, workflows.DeploymentWorkflow, workflows.DeploymentInput{Spec: *svc, Version: version, By: by, Emergency: emergency, CommitTime: o.CommitTime, ForceSchema: o.ForceSchema})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		e := &AlreadyRunningError{WorkflowID: id, RunID: started.RunId}
		if st, qerr := s.Status(ctx, svc.Name, svc.Environment); qerr == nil {
			e.Status = st
		}
		return nil, e
	}
	if err != nil {
		return nil, fmt.Errorf("deploy: start workflow %s: %w", id, err)
	}
	return run, nil
}

// Status queries the service's latest rollout, running or ended.
func (s *Starter) Status(ctx context.Context, service, env string) (*workflows.Status, error) {
	id := workflows.DeploymentID(service, env)
	v, err := s.C.QueryWorkflow(ctx, id, "", workflows.QueryStatus)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("no rollout of %s in %s was found (deploy it first: switchyard deploy %s --env %s --version ...)", service, env, service, env)
	}
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", id, err)
	}
	var st workflows.Status
	if err := v.Get(&st); err != nil {
		return nil, err
	}
	if g := st.Guard; g != nil && g.Workflow != "" {
		// after the warm window the Guard workflow judges: its word is newer
		if gv, err := s.C.QueryWorkflow(ctx, g.Workflow, "", workflows.QueryStatus); err == nil {
			var gst workflows.GuardStatus
			if gv.Get(&gst) == nil && gst.Version == st.Version {
				gst.Guard.Workflow = g.Workflow
				st.Guard = &gst.Guard
			}
		}
	}
	return &st, nil
}

// Control sends one of the rollout's Updates (pause, resume, abort,
// promote) and returns the status once the workflow has acted on it. A
// refused update returns the validator's reason.
func (s *Starter) Control(ctx context.Context, service, env, name string, arg any) (*workflows.Status, error) {
	id := workflows.DeploymentID(service, env)
	var args []any
	if arg != nil {
		args = append(args, arg)
	}
	var st workflows.Status
	if err := s.update(ctx, id, name, args, &st); err != nil {
		return nil, controlError(service, env, name, err)
	}
	return &st, nil
}

// update sends an Update and waits for its result in out. When the
// workflow task that carried it failed or timed out before the workflow
// accepted it (a busy or killed worker), the server answers "workflow not
// ready" and the update is not in the history: it is sent again, with the
// same update ID, until ctx ends. An abort must not fail for that.
func (s *Starter) update(ctx context.Context, id, name string, args []any, out any) error {
	updateID := rand.Text()
	for {
		h, err := s.C.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			UpdateID: updateID, WorkflowID: id, UpdateName: name, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err == nil {
			err = h.Get(ctx, out)
		}
		var notReady *serviceerror.WorkflowNotReady
		if !errors.As(err, &notReady) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func controlError(service, env, name string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%s: no rollout of %s in %s is running", name, service, env)
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return fmt.Errorf("%s refused: %s", name, app.Message())
	}
	return fmt.Errorf("%s: %w", name, err)
}

// WorkflowTaskTimeout bounds one workflow task of a rollout or rollback: a
// worker killed in the middle of one leaves it to be retried after this
// (Temporal's default is 10 s, which the kill matrix measured as the
// longest pause; 2 s lets a worker restarted 1 s after the kill take it
// within the 2 s target). A rollout's task replays ~100 events in
// milliseconds; one that took longer would be retried, not lost.
const WorkflowTaskTimeout = 2 * time.Second

// Outcome is how a rollout ended.
type Outcome struct {
	Status *workflows.Status
	// Kind is "" for promoted, or workflows.ErrRolledBack / ErrFailed.
	Kind   workflows.Ending
	Reason string
}

// Wait blocks until the run ends and returns its outcome.
func (s *Starter) Wait(ctx context.Context, run client.WorkflowRun) (*Outcome, error) {
	var st workflows.Status
	err := run.Get(ctx, &st)
	if err == nil {
		return &Outcome{Status: &st}, nil
	}
	var app *temporal.ApplicationError
	if k := workflows.EndingOf(err); (k == workflows.ErrRolledBack || k == workflows.ErrFailed) && errors.As(err, &app) {
		o := &Outcome{Kind: k, Reason: app.Message()}
		if app.HasDetails() {
			var det workflows.Status
			if app.Details(&det) == nil {
				o.Status = &det
			}
		}
		return o, nil
	}
	return nil, err
}

// Run returns a handle on the service's latest rollout.
func (s *Starter) Run(service, env string) client.WorkflowRun {
	return s.C.GetWorkflow(context.Background(), workflows.DeploymentID(service, env), "")
}

// RunSummary is one past rollout.
type RunSummary struct {
	// Type is the workflow type: Deployment, Rollback, Release, ...
	Type                          string
	Service, Environment, Release string
	WorkflowID, RunID             string
	Version, Phase                string
	Traffic                       int64
	Start, Close                  time.Time
	Status                        string
	// Schema is what the run's migrations did (its memo), if it ran any.
	Schema string
}

// History lists the service's rollouts in an environment, newest first.
func (s *Starter) History(ctx context.Context, service, env string, limit int) ([]RunSummary, error) {
	return s.history(ctx, fmt.Sprintf("%s = %q AND %s = %q", workflows.SAService.GetName(), service, workflows.SAEnvironment.GetName(), env), limit)
}

// ReleaseHistory lists a release's runs and everything they ran (rollouts,
// soak checks, freezes), newest first.
func (s *Starter) ReleaseHistory(ctx context.Context, name string, limit int) ([]RunSummary, error) {
	return s.history(ctx, fmt.Sprintf("%s = %q", workflows.SARelease.GetName(), name), limit)
}

// Runs lists rollouts, rollbacks and releases, newest first, narrowed by
// whichever of service, env and kind (a workflow type) are not "".
func (s *Starter) Runs(ctx context.Context, service, env, kind string, limit int) ([]RunSummary, error) {
	q := fmt.Sprintf("WorkflowType IN (%q, %q, %q)", workflows.DeploymentWorkflow, workflows.RollbackWorkflow, workflows.ReleaseWorkflow)
	if kind != "" {
		q = fmt.Sprintf("WorkflowType = %q", kind)
	}
	if service != "" {
		q += fmt.Sprintf(" AND %s = %q", workflows.SAService.GetName(), service)
	}
	if env != "" {
		q += fmt.Sprintf(" AND %s = %q", workflows.SAEnvironment.GetName(), env)
	}
	return s.history(ctx, q, limit)
}

func (s *Starter) history(ctx context.Context, q string, limit int) ([]RunSummary, error) {
	resp, err := s.C.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	var out []RunSummary
	for _, e := range resp.Executions {
		r := RunSummary{Type: e.Type.GetName(), WorkflowID: e.Execution.WorkflowId, RunID: e.Execution.RunId, Status: e.Status.String(),
			Service: attr[string](e.SearchAttributes, workflows.SAService.GetName()), Environment: attr[string](e.SearchAttributes, workflows.SAEnvironment.GetName()),
			Release: attr[string](e.SearchAttributes, workflows.SARelease.GetName())}
		if e.StartTime != nil {
			r.Start = e.StartTime.AsTime()
		}
		if e.CloseTime != nil {
			r.Close = e.CloseTime.AsTime()
		}
		r.Version, r.Phase = attr[string](e.SearchAttributes, workflows.SAVersion.GetName()), attr[string](e.SearchAttributes, workflows.SAPhase.GetName())
		r.Traffic = attr[int64](e.SearchAttributes, workflows.SATraffic.GetName())
		if f := e.GetMemo().GetFields()[workflows.MemoSchema]; f != nil {
			_ = converter.GetDefaultDataConverter().FromPayload(f, &r.Schema)
		}
		out = append(out, r)
	}
	return out, nil
}
