package starter

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/switchyard/switchyard/internal/incident"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/workflows"
)

// MonitorSchedule is the Schedule that runs a service's Monitor workflow
// every interval; overlapping runs are skipped.
func MonitorSchedule(svc *spec.Service, every time.Duration, taskQueue string) client.ScheduleOptions {
	id := workflows.MonitorID(svc.Name, svc.Environment)
	return client.ScheduleOptions{
		ID:      id,
		Spec:    client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}},
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Action: &client.ScheduleWorkflowAction{
			ID: id, Workflow: workflows.MonitorWorkflow, TaskQueue: taskQueue,
			Args:               []any{workflows.MonitorInput{Spec: *svc}},
			WorkflowRunTimeout: every + 2*time.Minute,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				workflows.SAService.ValueSet(svc.Name), workflows.SAEnvironment.ValueSet(svc.Environment)),
		},
		Note: fmt.Sprintf("switchyard monitoring of %s in %s every %s", svc.Name, svc.Environment, every),
	}
}

// EnableMonitor creates the Schedule, or updates it (interval, spec) when it
// exists: enabling twice is not an error. It says which it did.
func (s *Starter) EnableMonitor(ctx context.Context, svc *spec.Service, every time.Duration) (string, error) {
	opts := MonitorSchedule(svc, every, s.TaskQueue)
	_, err := s.C.ScheduleClient().Create(ctx, opts)
	if err == nil {
		return "created", nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return "", fmt.Errorf("monitor: create schedule %s: %w", opts.ID, err)
	}
	h := s.C.ScheduleClient().GetHandle(ctx, opts.ID)
	err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		sch := in.Description.Schedule
		sch.Spec = &opts.Spec
		sch.Action = opts.Action
		sch.Policy.Overlap = opts.Overlap
		return &client.ScheduleUpdate{Schedule: &sch}, nil
	}})
	if err != nil {
		return "", fmt.Errorf("monitor: update schedule %s: %w", opts.ID, err)
	}
	return "updated", nil
}

// DisableMonitor deletes the Schedule; runs already started finish.
func (s *Starter) DisableMonitor(ctx context.Context, service, env string) error {
	id := workflows.MonitorID(service, env)
	if err := s.C.ScheduleClient().GetHandle(ctx, id).Delete(ctx); err != nil {
		return fmt.Errorf("monitor: no schedule %s to disable (%w)", id, err)
	}
	return nil
}

// MonitorStatus describes the Schedule and the state its latest run left.
func (s *Starter) MonitorStatus(ctx context.Context, service, env string) (*client.ScheduleDescription, *incident.State, error) {
	d, err := s.C.ScheduleClient().GetHandle(ctx, workflows.MonitorID(service, env)).Describe(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("monitoring of %s in %s is not enabled (switchyard monitor enable %s --env %s): %w", service, env, service, env, err)
	}
	var last *incident.State
	for i := len(d.Info.RecentActions) - 1; i >= 0 && last == nil; i-- {
		a := d.Info.RecentActions[i]
		if a.StartWorkflowResult == nil {
			continue
		}
		var st incident.State
		run := s.C.GetWorkflow(ctx, a.StartWorkflowResult.WorkflowID, a.StartWorkflowResult.FirstExecutionRunID)
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if run.Get(cctx, &st) == nil {
			last = &st
		}
		cancel()
	}
	return d, last, nil
}

// RunMonitor runs one Monitor now and returns its state.
func (s *Starter) RunMonitor(ctx context.Context, svc *spec.Service) (*incident.State, error) {
	id := fmt.Sprintf("%s-now-%d", workflows.MonitorID(svc.Name, svc.Environment), time.Now().UnixMilli())
	run, err := s.C.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: s.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.SAService.ValueSet(svc.Name), workflows.SAEnvironment.ValueSet(svc.Environment)),
	}, workflows.MonitorWorkflow, workflows.MonitorInput{Spec: *svc})
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	var st incident.State
	if err := run.Get(ctx, &st); err != nil {
		return nil, fmt.Errorf("monitor run %s: %w", id, err)
	}
	return &st, nil
}
