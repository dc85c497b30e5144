package starter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/workflows"
)

// ServiceState is a service in an environment as its latest rollout or
// rollback left it (or leaves it now, while it runs), read from Temporal's
// visibility.
type ServiceState struct {
	Service, Environment string
	// Kind is the latest run's workflow type: Deployment or Rollback.
	Kind string
	// Version, Phase and Traffic (the version's share) are the latest run's.
	Version, Phase string
	Traffic        int64
	Running        bool
	Start, Close   time.Time
	WorkflowID     string
	RunID          string
	// Monitored: a monitoring run of the last day ran; Incidents is how
	// many incidents the latest one left open.
	Monitored bool
	Incidents int64
	// FrozenBy names the release whose freeze covers the service, if any.
	FrozenBy string
}

// ReleaseState is a release's latest run.
type ReleaseState struct {
	Name, Phase  string
	Running      bool
	Start, Close time.Time
	// Frozen is the release's freeze in force, if any.
	Frozen *workflows.FreezeState
}

// Overview is every service and release at a glance.
type Overview struct {
	Services []ServiceState
	Releases []ReleaseState
}

// overviewRuns bounds the runs read for an overview: the latest of each
// service is among the newest ones.
const overviewRuns = 5000

// monitorsEvery is how often the overview re-reads the monitoring runs:
// they run every few minutes, and Temporal limits visibility reads per
// namespace (frontend.namespaceRPS.visibility, 10/s by default), which an
// overview open in many pages must not use up.
const monitorsEvery = 15 * time.Second

type monitorCache struct {
	mu   sync.Mutex
	at   time.Time
	runs []*listed
}

// Overview lists every service and environment that has a rollout, by
// service then environment, each with its latest rollout or rollback, open
// incidents and freeze; and every release with its latest run. One
// visibility read (the monitoring runs' read is kept for monitorsEvery).
func (s *Starter) Overview(ctx context.Context) (*Overview, error) {
	all, err := s.list(ctx, fmt.Sprintf("WorkflowType IN (%q, %q, %q) OR (WorkflowType = %q AND ExecutionStatus = 'Running')",
		workflows.DeploymentWorkflow, workflows.RollbackWorkflow, workflows.ReleaseWorkflow, workflows.FreezeWorkflow), overviewRuns)
	if err != nil {
		return nil, fmt.Errorf("overview: %w", err)
	}
	monitors, err := s.monitorRuns(ctx)
	if err != nil {
		return nil, fmt.Errorf("overview: %w", err)
	}
	var runs, releases []*listed
	var freezes []*workflows.FreezeState
	for _, e := range all {
		switch e.Type {
		case workflows.ReleaseWorkflow:
			releases = append(releases, e)
		case workflows.FreezeWorkflow:
			freezes = append(freezes, s.freeze(ctx, e))
		default:
			runs = append(runs, e)
		}
	}

	latest := map[[2]string]*ServiceState{}
	for _, e := range runs {
		st := ServiceState{Service: e.Service, Environment: e.Environment, Kind: e.Type, Version: e.Version, Phase: e.Phase, Traffic: e.Traffic,
			Running: e.Running, Start: e.Start, Close: e.Close, WorkflowID: e.WorkflowID, RunID: e.RunID}
		if st.Service == "" {
			continue
		}
		k := [2]string{st.Service, st.Environment}
		if cur, ok := latest[k]; !ok || st.Start.After(cur.Start) {
			latest[k] = &st
		}
	}
	seenMonitor := map[[2]string]time.Time{}
	for _, m := range monitors {
		k := [2]string{m.Service, m.Environment}
		st, ok := latest[k]
		if !ok || !m.Start.After(seenMonitor[k]) {
			continue
		}
		seenMonitor[k] = m.Start
		st.Monitored, st.Incidents = true, m.Incidents
	}
	for _, st := range latest {
		for _, f := range freezes {
			if slices.Contains(f.Services, st.Service) {
				st.FrozenBy = f.Release
			}
		}
	}
	o := &Overview{}
	for _, st := range latest {
		o.Services = append(o.Services, *st)
	}
	sort.Slice(o.Services, func(i, j int) bool {
		if o.Services[i].Service != o.Services[j].Service {
			return o.Services[i].Service < o.Services[j].Service
		}
		return o.Services[i].Environment < o.Services[j].Environment
	})
	rel := map[string]*ReleaseState{}
	for _, e := range releases {
		if cur, ok := rel[e.Release]; e.Release == "" || ok && !e.Start.After(cur.Start) {
			continue
		}
		rel[e.Release] = &ReleaseState{Name: e.Release, Phase: e.Phase, Running: e.Running, Start: e.Start, Close: e.Close}
	}
	for _, f := range freezes {
		if r, ok := rel[f.Release]; ok {
			r.Frozen = f
		} else {
			rel[f.Release] = &ReleaseState{Name: f.Release, Phase: "never run", Frozen: f}
		}
	}
	for _, r := range rel {
		o.Releases = append(o.Releases, *r)
	}
	sort.Slice(o.Releases, func(i, j int) bool { return o.Releases[i].Name < o.Releases[j].Name })
	return o, nil
}

// listed is one run as visibility lists it, with Switchyard's attributes.
type listed struct {
	Type, WorkflowID, RunID                       string
	Service, Environment, Version, Phase, Release string
	Traffic, Incidents                            int64
	Running                                       bool
	Start, Close                                  time.Time
}

// list reads up to max runs matching q, newest first.
func (s *Starter) list(ctx context.Context, q string, max int) ([]*listed, error) {
	var out []*listed
	var token []byte
	for len(out) < max {
		resp, err := s.C.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 1000, NextPageToken: token})
		if err != nil {
			return nil, err
		}
		for _, e := range resp.Executions {
			sa := e.SearchAttributes
			l := &listed{Type: e.Type.GetName(), WorkflowID: e.Execution.WorkflowId, RunID: e.Execution.RunId,
				Service: attr[string](sa, workflows.SAService.GetName()), Environment: attr[string](sa, workflows.SAEnvironment.GetName()),
				Version: attr[string](sa, workflows.SAVersion.GetName()), Phase: attr[string](sa, workflows.SAPhase.GetName()),
				Release: attr[string](sa, workflows.SARelease.GetName()),
				Traffic: attr[int64](sa, workflows.SATraffic.GetName()), Incidents: attr[int64](sa, workflows.SAIncidents.GetName()),
				Running: e.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING}
			if e.StartTime != nil {
				l.Start = e.StartTime.AsTime()
			}
			if e.CloseTime != nil {
				l.Close = e.CloseTime.AsTime()
			}
			out = append(out, l)
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	return out, nil
}

// monitorRuns reads the monitoring runs of the last day, at most every monitorsEvery.
func (s *Starter) monitorRuns(ctx context.Context) ([]*listed, error) {
	c := &s.monitors
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < monitorsEvery {
		return c.runs, nil
	}
	runs, err := s.list(ctx, fmt.Sprintf("WorkflowType = %q AND ExecutionStatus = 'Completed' AND StartTime > %q",
		workflows.MonitorWorkflow, time.Now().Add(-24*time.Hour).UTC().Format(time.RFC3339)), 1000)
	if err != nil {
		return nil, err
	}
	c.at, c.runs = time.Now(), runs
	return runs, nil
}

// freeze reads a running freeze's state.
func (s *Starter) freeze(ctx context.Context, r *listed) *workflows.FreezeState {
	f := &workflows.FreezeState{Release: r.Release, Reason: "(its reason could not be read)"}
	if v, err := s.C.QueryWorkflow(ctx, r.WorkflowID, r.RunID, workflows.QueryStatus); err == nil {
		_ = v.Get(f)
	}
	return f
}

// DeployedSpec is the spec the service's latest rollout in env ran with,
// read from its start: what a rollback from the dashboard (which has no
// spec files) runs with.
func (s *Starter) DeployedSpec(ctx context.Context, service, env string) (*spec.Service, error) {
	it := s.C.GetWorkflowHistory(ctx, workflows.DeploymentID(service, env), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return nil, fmt.Errorf("no rollout of %s in %s was found", service, env)
	}
	ev, err := it.Next()
	if err != nil {
		return nil, fmt.Errorf("the spec of %s in %s: %w", service, env, err)
	}
	var in workflows.DeploymentInput
	if err := fromStarted(ev, &in); err != nil {
		return nil, fmt.Errorf("the spec of %s in %s: %w", service, env, err)
	}
	return &in.Spec, nil
}

// fromStarted decodes a run's input from its first event.
func fromStarted(ev *historypb.HistoryEvent, in any) error {
	a := ev.GetWorkflowExecutionStartedEventAttributes()
	if a == nil || len(a.GetInput().GetPayloads()) == 0 {
		return errors.New("its first event has no input")
	}
	return converter.GetDefaultDataConverter().FromPayload(a.Input.Payloads[0], in)
}
