package starter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
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

// Emergency is the reason a release or rollout bypasses a freeze; its
// reason and who gave it are recorded in the run's events.
type Emergency struct{ Reason string }

// DeployOptions say how a rollout or release treats the calendar.
type DeployOptions struct {
	// Emergency goes through freezes (a release's, the spec's).
	Emergency *Emergency
	// NoWait refuses, instead of waiting, outside the allowed windows.
	NoWait bool
	// CommitTime is when the version's commit was made (for its lead time).
	CommitTime time.Time
	// ForceSchema goes back to a version a contract broke, without a down migration.
	ForceSchema bool
}

// OutsideWindowError refuses a --no-wait start outside the allowed windows.
type OutsideWindowError struct{ Until time.Time }

func (e *OutsideWindowError) Error() string {
	if e.Until.IsZero() {
		return "refused: outside the allowed windows, and none ever opens"
	}
	return fmt.Sprintf("refused: outside the allowed windows until %s (--no-wait); without it the rollout waits", e.Until.Local().Format(time.RFC1123))
}

// checkCalendar refuses a rollout of svc that a freeze stops (a release's
// or the spec's own) unless it is an emergency, and one outside the spec's
// windows when told not to wait.
func (s *Starter) checkCalendar(ctx context.Context, svc *spec.Service, o *DeployOptions) error {
	if o.Emergency == nil {
		if f, frozen := s.serviceFrozen(ctx, svc.Name); frozen {
			return &FrozenError{Freeze: fmt.Sprintf("release %s frozen by %s: %s", f.Release, f.By, f.Reason)}
		}
	}
	ws, errs := svc.Windows.Parse("windows")
	if len(errs) > 0 {
		return &BadInputError{fmt.Errorf("%s: %s", errs[0].Field, errs[0].Msg)}
	}
	if f, frozen := ws.Frozen(time.Now()); frozen && o.Emergency == nil {
		return &FrozenError{Freeze: f.Text}
	}
	if ok, next := ws.Allowed(time.Now()); !ok && o.NoWait {
		return &OutsideWindowError{Until: next}
	}
	return nil
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
		if err := spec.CheckVersion(val); err != nil {
			return nil, fmt.Errorf("--set %s: %w", k, err)
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
// for every environment from the one named by from (all when ""), in
// dependency levels. A freeze in force refuses it.
func (s *Starter) StartRelease(ctx context.Context, r *release.Release, versions map[string]string, from, by string, o DeployOptions) (client.WorkflowRun, error) {
	em := o.Emergency
	ws, errs := r.Windows.Parse("windows")
	if len(errs) > 0 {
		return nil, &BadInputError{fmt.Errorf("%s: %s", errs[0].Field, errs[0].Msg)}
	}
	if em == nil {
		if f, frozen := ws.Frozen(time.Now()); frozen {
			return nil, &FrozenError{Freeze: f.Text}
		}
		if f, frozen := s.Frozen(ctx, r.Name); frozen {
			return nil, &FrozenError{Freeze: fmt.Sprintf("release %s frozen by %s: %s", r.Name, f.By, f.Reason)}
		}
	} else {
		by += " (emergency: " + em.Reason + ")"
		in := r.Windows
		in.Freeze = nil // an emergency goes through the calendar's freezes too
		r = &release.Release{Name: r.Name, Services: r.Services, Environments: r.Environments, Windows: in, Alerts: r.Alerts, Dir: r.Dir}
	}
	if ok, next := ws.Allowed(time.Now()); !ok && o.NoWait {
		return nil, &OutsideWindowError{Until: next}
	}
	in := workflows.ReleaseInput{Name: r.Name, Versions: versions, Windows: r.Windows, Alerts: r.Alerts, By: by}
	if em != nil {
		in.Emergency = em.Reason
	}
	levels := r.Levels()
	for n, svc := range r.Services {
		if len(svc.After) > 0 {
			if in.After == nil {
				in.After = map[string][]string{}
			}
			in.After[n] = svc.After
		}
	}
	envs := r.Environments
	if from != "" {
		_, i := r.Environment(from)
		if i < 0 {
			return nil, &BadInputError{fmt.Errorf("release %s has no environment %s", r.Name, from)}
		}
		envs = envs[i:]
	}
	for _, e := range envs {
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
	run, err := s.C.ExecuteWorkflow(ctx, exclusive(id, s.TaskQueue, workflows.SARelease.ValueSet(r.Name),
		workflows.SAPhase.ValueSet(string(workflows.ReleaseRunning))), workflows.ReleaseWorkflow, in)
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
	var st workflows.ReleaseStatus
	err := s.update(ctx, workflows.ReleaseID(name), update, []any{req}, &st)
	if err == nil {
		return &st, nil
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

// PassedVersions finds the newest run of a release in which every service
// promoted in env, and returns its versions: what passed there is what the
// next environments get.
func (s *Starter) PassedVersions(ctx context.Context, name, env string) (map[string]string, error) {
	q := fmt.Sprintf("WorkflowType = '%s' AND %s = %q AND ExecutionStatus != 'Running'",
		workflows.ReleaseWorkflow, workflows.SARelease.GetName(), name)
	var token []byte
	for {
		resp, err := s.C.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 50, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("releases of %s: %w", name, err)
		}
		for _, e := range resp.Executions {
			st, err := s.WaitRelease(ctx, s.C.GetWorkflow(ctx, e.Execution.WorkflowId, e.Execution.RunId))
			if err != nil || !passed(st, env) {
				continue
			}
			return st.Versions, nil
		}
		if token = resp.NextPageToken; len(token) == 0 {
			return nil, &BadInputError{fmt.Errorf("--set-from %s: no run of release %s promoted every service in %s", env, name, env)}
		}
	}
}

func passed(st *workflows.ReleaseStatus, env string) bool {
	n := 0
	for _, sv := range st.Services {
		if sv.Environment != env {
			continue
		}
		if sv.Phase != "done" {
			return false
		}
		n++
	}
	return n > 0
}

// Freeze freezes a release: new releases of it and deploys of its services
// are refused until Unfreeze, and a release running now pauses its
// rollouts before their next traffic step. services are the release's, sorted.
func (s *Starter) Freeze(ctx context.Context, name string, services []string, reason, by string) error {
	id := workflows.FreezeID(name)
	_, err := s.C.ExecuteWorkflow(ctx, exclusive(id, s.TaskQueue, workflows.SARelease.ValueSet(name)), workflows.FreezeWorkflow, workflows.FreezeState{Release: name, Services: services, Reason: reason, By: by})
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		if f, ok := s.Frozen(ctx, name); ok {
			return &AlreadyRunningError{WorkflowID: id, RunID: started.RunId, What: fmt.Sprintf("release %s is already frozen by %s: %s", name, f.By, f.Reason)}
		}
	}
	if err != nil {
		return fmt.Errorf("freeze %s: %w", name, err)
	}
	err = s.C.SignalWorkflow(ctx, workflows.ReleaseID(name), "", workflows.FreezeSignal,
		workflows.FreezeState{Release: name, Services: services, Reason: reason, By: by})
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("freeze %s: tell the running release: %w", name, err)
	}
	return nil
}

// Unfreeze ends a release's freeze and resumes a release it paused.
func (s *Starter) Unfreeze(ctx context.Context, name, by string) error {
	err := s.C.SignalWorkflow(ctx, workflows.FreezeID(name), "", workflows.Unfreeze, by)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return &BadInputError{fmt.Errorf("unfreeze: release %s is not frozen", name)}
	}
	if err != nil {
		return fmt.Errorf("unfreeze %s: %w", name, err)
	}
	err = s.C.SignalWorkflow(ctx, workflows.ReleaseID(name), "", workflows.Unfreeze, by)
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("unfreeze %s: tell the running release: %w", name, err)
	}
	return nil
}

// Frozen returns a release's freeze, if one is in force.
func (s *Starter) Frozen(ctx context.Context, name string) (*workflows.FreezeState, bool) {
	d, err := s.C.DescribeWorkflowExecution(ctx, workflows.FreezeID(name), "")
	if err != nil || d.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return nil, false
	}
	v, err := s.C.QueryWorkflow(ctx, workflows.FreezeID(name), "", workflows.QueryStatus)
	var f workflows.FreezeState
	if err != nil || v.Get(&f) != nil {
		return &workflows.FreezeState{Release: name, Reason: "(its reason could not be read)"}, true
	}
	return &f, true
}

// serviceFrozen finds a freeze in force that covers a service.
func (s *Starter) serviceFrozen(ctx context.Context, service string) (*workflows.FreezeState, bool) {
	q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", workflows.FreezeWorkflow)
	resp, err := s.C.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 100})
	if err != nil {
		return nil, false
	}
	for _, e := range resp.Executions {
		v, err := s.C.QueryWorkflow(ctx, e.Execution.WorkflowId, e.Execution.RunId, workflows.QueryStatus)
		var f workflows.FreezeState
		if err != nil || v.Get(&f) != nil {
			continue
		}
		if slices.Contains(f.Services, service) {
			return &f, true
		}
	}
	return nil, false
}

// Staged is a release rollback through each service's own steps and bakes.
const Staged workflows.Strategy = "staged"

// RollbackRelease undoes the newest run of a release in one environment,
// after it ended: a release of each service's previous version there, in
// the reverse dependency order, with the same unit semantics (if one fails,
// the others go back to what they ran). Immediate skips the steps and
// bakes: each service is provisioned, checked and cut over at once.
func (s *Starter) RollbackRelease(ctx context.Context, r *release.Release, env string, strategy workflows.Strategy, reason, by string) (client.WorkflowRun, error) {
	if strategy != "" && strategy != workflows.Immediate && strategy != Staged {
		return nil, &BadInputError{fmt.Errorf("--strategy %s: a release rolls back %s (each service's own steps and bakes, the default) or %s (each service provisioned, checked and cut over at once)", strategy, Staged, workflows.Immediate)}
	}
	if _, i := r.Environment(env); i < 0 {
		return nil, &BadInputError{fmt.Errorf("release %s has no environment %s", r.Name, env)}
	}
	last, err := s.ReleaseStatus(ctx, r.Name)
	if err != nil {
		return nil, &BadInputError{err}
	}
	if last.EndedAt.IsZero() {
		return nil, &AlreadyRunningError{WorkflowID: workflows.ReleaseID(r.Name),
			What: fmt.Sprintf("release %s is running (phase %s); it rolls back as a unit by itself when a service fails", r.Name, last.Phase)}
	}
	prev := map[string]string{}
	for _, sv := range last.Services {
		if sv.Environment == env && sv.Phase == "done" && sv.PreviousVersion != "" {
			prev[sv.Service] = sv.PreviousVersion
		}
	}
	if len(prev) == 0 {
		return nil, &BadInputError{fmt.Errorf("the last run of release %s promoted nothing in %s with a version before it: nothing to roll back", r.Name, env)}
	}
	specs, err := r.ResolveSpecs(env)
	if err != nil {
		return nil, &BadInputError{err}
	}
	re := workflows.ReleaseEnvironment{Name: env, Specs: map[string]spec.Service{}}
	levels := r.Levels()
	for li := len(levels) - 1; li >= 0; li-- { // dependents first
		var level []string
		for _, svc := range levels[li] {
			if _, ok := prev[svc]; ok {
				level = append(level, svc)
				sp := *specs[svc]
				if strategy == workflows.Immediate {
					// the version it goes back to ran here before: its checks
					// still run on the idle slot, then all traffic moves at once
					sp.Rollout.Steps, sp.Rollout.Bake = []int{100}, 0
				}
				re.Specs[svc] = sp
			}
		}
		if len(level) > 0 {
			re.Levels = append(re.Levels, level)
		}
	}
	in := workflows.ReleaseInput{Name: r.Name, Versions: prev, Environments: []workflows.ReleaseEnvironment{re}, Alerts: r.Alerts,
		By: by + " (rollback of " + env + ": " + reason + ")"}
	return s.C.ExecuteWorkflow(ctx, exclusive(workflows.ReleaseID(r.Name), s.TaskQueue, workflows.SARelease.ValueSet(r.Name),
		workflows.SAPhase.ValueSet(string(workflows.ReleaseRunning))), workflows.ReleaseWorkflow, in)
}

// exclusive are the options of a run that must be the only one with its ID
// (a release, a freeze): a second start fails, naming the first.
func exclusive(id, queue string, sa ...temporal.SearchAttributeUpdate) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID: id, TaskQueue: queue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		TypedSearchAttributes:                    temporal.NewSearchAttributes(sa...),
	}
}
