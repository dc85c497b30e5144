package starter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/switchyard/switchyard/internal/release"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/workflows"
)

// FrozenError says a freeze refuses new releases and rollouts.
type FrozenError struct{ Freeze string }

func (e *FrozenError) Error() string {
	return fmt.Sprintf("refused: frozen (%s); wait for it to end, or bypass it with --emergency --reason", e.Freeze)
}

// RefusedError is a release's validator refusing an approval or rejection.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return e.Err.Error() }

// ParseVersions reads "backend=v2,frontend=v7" and checks it names every
// service of the release and no other.
func ParseVersions(r *release.Release, set string) (map[string]string, error) {
	v := map[string]string{}
	for _, kv := range strings.Split(set, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" || val == "" {
			return nil, fmt.Errorf("--set: %q is not SERVICE=VERSION", kv)
		}
		if _, known := r.Services[k]; !known {
			return nil, fmt.Errorf("--set: release %s has no service %q (it has %s)", r.Name, k, strings.Join(r.ServiceNames(), ", "))
		}
		v[k] = val
	}
	var missing []string
	for _, n := range r.ServiceNames() {
		if v[n] == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("--set: no version for %s (give every service of release %s one)", strings.Join(missing, ", "), r.Name)
	}
	return v, nil
}

// StartRelease starts the Release workflow: every service's spec resolved
// for every environment, in dependency levels. A freeze in force refuses it.
func (s *Starter) StartRelease(ctx context.Context, r *release.Release, versions map[string]string, by string) (client.WorkflowRun, error) {
	ws, err := r.Windows.Parse()
	if err != nil {
		return nil, &BadInputError{err}
	}
	if f, frozen := ws.Frozen(time.Now()); frozen {
		return nil, &FrozenError{Freeze: f.Text}
	}
	in := workflows.ReleaseInput{Name: r.Name, Versions: versions, Windows: r.Windows, By: by}
	levels := r.Levels()
	for _, e := range r.Environments {
		specs, err := r.ResolveSpecs(e.Name)
		if err != nil {
			return nil, &BadInputError{err}
		}
		re := workflows.ReleaseEnvironment{Name: e.Name, Approval: e.Approval, Soak: e.Soak, Levels: levels, Specs: map[string]spec.Service{}}
		for n, sp := range specs {
			re.Specs[n] = *sp
		}
		in.Environments = append(in.Environments, re)
	}
	id := workflows.ReleaseID(r.Name)
	run, err := s.C.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: id, TaskQueue: s.TaskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.SARelease.ValueSet(r.Name),
			workflows.SAPhase.ValueSet(workflows.ReleaseRunning)),
	}, workflows.ReleaseWorkflow, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil, &AlreadyRunningError{WorkflowID: id, RunID: started.RunId,
			What: fmt.Sprintf("release %s is already running; follow it with: switchyard release status %s", r.Name, r.Name)}
	}
	if err != nil {
		return nil, fmt.Errorf("release: start workflow %s: %w", id, err)
	}
	return run, nil
}

// ReleaseStatus queries a release's latest run.
func (s *Starter) ReleaseStatus(ctx context.Context, name string) (*workflows.ReleaseStatus, error) {
	v, err := s.C.QueryWorkflow(ctx, workflows.ReleaseID(name), "", workflows.QueryStatus)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("no release %s was found (start one: switchyard release start %s --set ...)", name, name)
	}
	if err != nil {
		return nil, fmt.Errorf("status of release %s: %w", name, err)
	}
	var st workflows.ReleaseStatus
	if err := v.Get(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

// DecideRelease approves or rejects (workflows.Approve, workflows.Reject)
// the environment a release waits at; a refusal returns the reason.
func (s *Starter) DecideRelease(ctx context.Context, name, update string, req workflows.ApprovalRequest) (*workflows.ReleaseStatus, error) {
	h, err := s.C.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.ReleaseID(name), UpdateName: update, Args: []any{req}, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		var st workflows.ReleaseStatus
		if err = h.Get(ctx, &st); err == nil {
			return &st, nil
		}
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, &BadInputError{fmt.Errorf("%s: no release %s is running", update, name)}
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return nil, &RefusedError{fmt.Errorf("%s refused: %s", update, app.Message())}
	}
	return nil, fmt.Errorf("%s: %w", update, err)
}

// WaitRelease blocks until a release ends and returns its final status.
func (s *Starter) WaitRelease(ctx context.Context, run client.WorkflowRun) (*workflows.ReleaseStatus, error) {
	var st workflows.ReleaseStatus
	err := run.Get(ctx, &st)
	if err == nil {
		return &st, nil
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.HasDetails() && app.Details(&st) == nil && st.Phase != "" {
		return &st, nil
	}
	return nil, err
}
