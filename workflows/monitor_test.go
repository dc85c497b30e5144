package workflows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/incident"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

type monFixture struct {
	mu       sync.Mutex // the test environment runs parallel activities on goroutines
	env      *testsuite.TestWorkflowEnvironment
	in       MonitorInput
	results  []rollout.CheckResult
	last     *incident.State
	aborts   []string
	breaches []string
	// deployGone, guardGone: no rollout (no guard) runs to take the signal
	deployGone, guardGone bool
	notified              []activities.NotifyInput
	notify                func(activities.NotifyInput) (string, error)
}

func newMonitor(t *testing.T) *monFixture {
	var ts testsuite.WorkflowTestSuite
	f := &monFixture{env: ts.NewTestWorkflowEnvironment()}
	s := testSpec()
	s.Alerts = []spec.Alert{{Kind: "webhook"}, {Kind: "github"}}
	f.in = MonitorInput{Spec: s}
	f.notify = func(in activities.NotifyInput) (string, error) {
		if f.in.Spec.Alerts[in.Channel].Kind == "github" && in.Action == incident.Open {
			return "42", nil
		}
		return "", nil
	}
	env := f.env
	env.RegisterWorkflow(Monitor)
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(acts.LastMonitorState, mock.Anything, mock.Anything).Return(
		func(_ context.Context, query string) (*incident.State, error) {
			if !strings.Contains(query, "SwitchyardService = \"api\"") {
				return nil, fmt.Errorf("query %q does not name the service", query)
			}
			return f.last, nil
		})
	env.OnActivity(acts.MonitorChecks, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.MonitorChecksInput) (*activities.MonitorChecksResult, error) {
			return &activities.MonitorChecksResult{Results: f.results, Live: rollout.Blue}, nil
		})
	env.OnActivity(acts.Notify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.NotifyInput) (string, error) {
			f.mu.Lock()
			f.notified = append(f.notified, in)
			f.mu.Unlock()
			return f.notify(in)
		})
	env.OnSignalExternalWorkflow(mock.Anything, "deploy/api/production", "", Abort, mock.Anything).Return(
		func(_, _, _, _ string, arg any) error {
			if f.deployGone {
				return errors.New("workflow not found")
			}
			f.aborts = append(f.aborts, arg.(AbortRequest).Reason)
			return nil
		})
	env.OnSignalExternalWorkflow(mock.Anything, "guard/api/production", "", Breach, mock.Anything).Return(
		func(_, _, _, _ string, arg any) error {
			if f.guardGone {
				return errors.New("workflow not found")
			}
			f.breaches = append(f.breaches, arg.(AbortRequest).Reason)
			return nil
		})
	return f
}

func (f *monFixture) run(t *testing.T) *incident.State {
	f.env.ExecuteWorkflow(Monitor, f.in)
	require.True(t, f.env.IsWorkflowCompleted())
	require.NoError(t, f.env.GetWorkflowError())
	var st incident.State
	require.NoError(t, f.env.GetWorkflowResult(&st))
	return &st
}

func TestMonitorOpensOneIncidentOnEveryChannelAndKeepsTheRefs(t *testing.T) {
	f := newMonitor(t)
	f.results = []rollout.CheckResult{{Name: "health:root", Passed: false, Detail: "status 503"}, {Name: "performance", Passed: true}}
	st := f.run(t)
	require.Len(t, st.Incidents, 1)
	require.Len(t, f.notified, 2, "one open per channel")
	require.Equal(t, "42", st.Incidents[0].RefFor("github#1"), "the issue number is kept for the next run")
	require.Empty(t, f.aborts, "a non-critical check never rolls back")
}

func TestCriticalCheckTriggersTheRollbackWhenTheSpecAllows(t *testing.T) {
	f := newMonitor(t)
	f.in.Spec.Monitor.RollbackOnCritical = true
	f.results = []rollout.CheckResult{{Name: "health:root", Passed: false, Critical: true, Detail: "status 503"}}
	st := f.run(t)
	require.Len(t, f.aborts, 1)
	require.Contains(t, f.aborts[0], "critical check health:root failing")
	require.Equal(t, "abort signalled to deploy/api/production", st.Rollback)

	g := newMonitor(t)
	g.results = f.results // same failure, but the spec does not allow it
	g.run(t)
	require.Empty(t, g.aborts)
}

// After the warm window the rollout has ended: the critical check takes the
// guard's way back, a Breach to the service's Guard, which redeploys the
// last known-good version; with no guard either, it says there is nothing.
func TestACriticalCheckAfterTheWarmWindowGoesToTheGuard(t *testing.T) {
	f := newMonitor(t)
	f.in.Spec.Monitor.RollbackOnCritical = true
	f.deployGone = true
	f.results = []rollout.CheckResult{{Name: "health:root", Passed: false, Critical: true, Detail: "status 503"}}
	st := f.run(t)
	require.Empty(t, f.aborts)
	require.Len(t, f.breaches, 1)
	require.Contains(t, f.breaches[0], "critical check health:root failing")
	require.Equal(t, "breach signalled to guard/api/production: it redeploys the last known-good version", st.Rollback)

	g := newMonitor(t)
	g.in.Spec.Monitor.RollbackOnCritical = true
	g.deployGone, g.guardGone = true, true
	g.results = f.results
	require.Equal(t, "no rollout in its rollback window and no guard running: nothing to roll back to", g.run(t).Rollback)
}

func TestAChannelThatIsDownNeverStopsTheRun(t *testing.T) {
	f := newMonitor(t)
	f.in.Spec.Monitor.RollbackOnCritical = true
	f.notify = func(in activities.NotifyInput) (string, error) {
		if f.in.Spec.Alerts[in.Channel].Kind == "webhook" {
			return "", errors.New("connection refused")
		}
		return "7", nil
	}
	f.results = []rollout.CheckResult{{Name: "health:root", Passed: false, Critical: true, Detail: "status 503"}}
	st := f.run(t)
	require.Len(t, st.Incidents, 1)
	require.Len(t, f.aborts, 1, "the rollback still happens")
	require.Contains(t, st.Delivery[0], "to webhook#0 failed")
	require.Contains(t, st.Delivery[1], "sent to github#1")
	// 3 attempts at the webhook, 1 at github
	require.Len(t, f.notified, 4)
}

func TestMonitorResolvesWhatTheLastRunLeftOpen(t *testing.T) {
	f := newMonitor(t)
	f.last = &incident.State{Incidents: []incident.Incident{{Key: "api/production/health:root", Check: "health:root",
		Refs: []incident.Ref{{Channel: "github#1", Ref: "42"}}, OpenedAt: time.Unix(1, 0)}}}
	f.results = []rollout.CheckResult{{Name: "health:root", Passed: true}}
	st := f.run(t)
	require.Empty(t, st.Incidents)
	require.Len(t, f.notified, 2)
	for _, n := range f.notified {
		require.Equal(t, incident.Resolve, n.Action)
		require.Equal(t, "42", n.In.RefFor("github#1"), "the channel gets the ref it gave")
	}
}
