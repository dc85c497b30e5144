package workflows

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/incident"
	"github.com/switchyard/switchyard/internal/release"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/window"
)

// relFixture runs the Release workflow under the SDK's test suite with a
// stand-in for its Deployment children (the Deployment workflow itself is
// tested on its own, and end to end): each takes deployFor, then fails if
// it is in bad, else tells the release it promoted and holds until the
// release is done (or aborts it).
type relFixture struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	in  ReleaseInput

	mu        sync.Mutex
	bad       map[string]bool // service/env that roll back by themselves
	first     map[string]bool // service/env deployed for the first time
	started   map[string]time.Time
	promoted  map[string]time.Time
	ended     map[string]string // service/env → done, rolled-back (aborted), failed
	versions  map[string]string // service/env → version deployed last
	deployFor time.Duration
	pending   int
}

func newRelease(t *testing.T) *relFixture {
	var ts testsuite.WorkflowTestSuite
	f := &relFixture{t: t, env: ts.NewTestWorkflowEnvironment(), bad: map[string]bool{}, first: map[string]bool{},
		started: map[string]time.Time{}, promoted: map[string]time.Time{}, ended: map[string]string{}, versions: map[string]string{},
		deployFor: 5 * time.Minute}
	envs := []ReleaseEnvironment{}
	for _, name := range []string{"staging", "production"} {
		specs := map[string]spec.Service{}
		for _, svc := range []string{"backend", "frontend"} {
			s := testSpec()
			s.Name, s.Environment = svc, name
			specs[svc] = s
		}
		envs = append(envs, ReleaseEnvironment{Name: name, Levels: [][]string{{"backend"}, {"frontend"}}, Specs: specs})
	}
	f.in = ReleaseInput{Name: "shop", Versions: map[string]string{"backend": "v2", "frontend": "v7"}, Environments: envs, By: "test"}
	f.env.RegisterWorkflowWithOptions(Release, workflow.RegisterOptions{Name: ReleaseWorkflow})
	f.env.RegisterWorkflowWithOptions(f.deployment, workflow.RegisterOptions{Name: DeploymentWorkflow})
	return f
}

func (f *relFixture) deployment(ctx workflow.Context, in DeploymentInput) (*Status, error) {
	key := in.Spec.Name + "/" + in.Spec.Environment
	f.mu.Lock()
	f.started[key] = workflow.Now(ctx)
	f.versions[key] = in.Version
	bad, first := f.bad[key], f.first[key]
	f.mu.Unlock()
	end := func(how string) {
		f.mu.Lock()
		f.ended[key] = how
		f.mu.Unlock()
	}
	st := &Status{Service: in.Spec.Name, Environment: in.Spec.Environment, Version: in.Version, PreviousVersion: "v1"}
	if err := workflow.Sleep(ctx, f.deployFor); err != nil {
		return nil, err
	}
	if bad {
		end("rolled-back")
		return nil, ErrRolledBack.end("rolled back: analysis failed at 10%", st)
	}
	if !in.Hold {
		end("done")
		return st, nil
	}
	p := workflow.GetInfo(ctx).ParentWorkflowExecution
	msg := ServicePromoted{Service: in.Spec.Name, Environment: in.Spec.Environment, Version: in.Version, PreviousVersion: "v1", First: first}
	if first {
		msg.PreviousVersion = ""
	}
	require.NoError(f.t, workflow.SignalExternalWorkflow(ctx, p.ID, p.RunID, ServicePromotedSignal, msg).Get(ctx, nil))
	f.mu.Lock()
	f.promoted[key] = workflow.Now(ctx)
	f.mu.Unlock()
	if first {
		end("done")
		return st, nil
	}
	var abort AbortRequest
	done := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, Abort), func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, &abort) })
	sel.AddReceive(workflow.GetSignalChannel(ctx, ReleaseDone), func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); done = true })
	sel.Select(ctx)
	if !done {
		end("rolled-back")
		return nil, ErrRolledBack.end("rolled back: "+abort.Reason, st)
	}
	end("done")
	return st, nil
}

func (f *relFixture) run() *ReleaseStatus {
	f.env.ExecuteWorkflow(ReleaseWorkflow, f.in)
	require.True(f.t, f.env.IsWorkflowCompleted())
	require.Zero(f.t, f.pending, "an update callback never ran")
	var st ReleaseStatus
	if err := f.env.GetWorkflowError(); err != nil {
		var app *temporal.ApplicationError
		require.ErrorAs(f.t, err, &app)
		require.NoError(f.t, app.Details(&st))
		return &st
	}
	require.NoError(f.t, f.env.GetWorkflowResult(&st))
	return &st
}

func (f *relFixture) update(name string, req ApprovalRequest, want string) {
	sendUpdate(f.t, f.env, &f.pending, name, want, req)
}

func TestAReleaseDeploysInDependencyOrderThroughEachEnvironment(t *testing.T) {
	f := newRelease(t)
	st := f.run()
	require.Equal(t, ReleasePromoted, st.Phase, st.Reason)
	for _, env := range []string{"staging", "production"} {
		// the frontend starts only once the backend promoted
		require.False(t, f.started["frontend/"+env].Before(f.promoted["backend/"+env]), env)
		require.Equal(t, "done", f.ended["backend/"+env])
		require.Equal(t, "done", f.ended["frontend/"+env])
	}
	// production starts only after staging is done, with the same versions
	require.False(t, f.started["backend/production"].Before(f.promoted["frontend/staging"]))
	require.Equal(t, "v7", f.versions["frontend/production"])
	for _, s := range st.Services {
		require.Equal(t, "done", s.Phase, s.Service+"/"+s.Environment)
	}
}

func TestAFailedServiceRollsBackItsPromotedSiblingsAndStopsTheRelease(t *testing.T) {
	f := newRelease(t)
	f.bad["frontend/staging"] = true
	st := f.run()
	require.Equal(t, ReleaseRolledBack, st.Phase)
	require.Contains(t, st.Reason, "frontend in staging: rolled back: analysis failed at 10%")
	require.Equal(t, "rolled-back", f.ended["backend/staging"], "the backend went back after the frontend failed")
	require.NotContains(t, f.started, "backend/production", "production is never touched")
	byKey := map[string]ReleaseService{}
	for _, s := range st.Services {
		byKey[s.Service+"/"+s.Environment] = s
	}
	require.Equal(t, "rolled-back", byKey["backend/staging"].Phase)
	require.Equal(t, "back on v1", byKey["backend/staging"].Reason)
	require.Equal(t, "pending", byKey["backend/production"].Phase)
}

func TestAFirstDeploymentHasNothingToGoBackTo(t *testing.T) {
	f := newRelease(t)
	f.first["backend/staging"] = true
	f.bad["frontend/staging"] = true
	st := f.run()
	require.Equal(t, ReleaseRolledBack, st.Phase)
	require.Equal(t, "done", f.ended["backend/staging"])
	for _, s := range st.Services {
		if s.Service == "backend" && s.Environment == "staging" {
			require.Contains(t, s.Reason, "nothing to go back to")
		}
	}
}

func approvalFixture(t *testing.T, onTimeout string) *relFixture {
	f := newRelease(t)
	f.in.Environments[1].Approval = release.Approval{Required: true, Timeout: spec.Duration(4 * time.Hour), OnTimeout: onTimeout,
		Approvers: []string{"alice", "bob"}}
	return f
}

func TestAnApprovalInTimeLetsTheReleaseIntoProduction(t *testing.T) {
	f := approvalFixture(t, release.OnTimeoutAbort)
	f.in.Alerts = []spec.Alert{{Kind: "webhook", URL: "http://127.0.0.1:1/hook", SecretEnv: "HOOK_KEY"}}
	var notices []activities.NotifyInput
	f.env.RegisterActivity(&activities.Activities{})
	f.env.OnActivity(acts.Notify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.NotifyInput) (string, error) {
			f.mu.Lock()
			notices = append(notices, in)
			f.mu.Unlock()
			return "", nil
		})
	f.env.RegisterDelayedCallback(func() {
		f.update(Approve, ApprovalRequest{Environment: "staging", By: "alice"}, "waits for approval of production, not staging")
		f.update(Approve, ApprovalRequest{Environment: "production", By: "mallory"}, "mallory may not approve production")
		f.update(Approve, ApprovalRequest{Environment: "production", By: "alice", Reason: "CAB-123"}, "")
		f.update(Approve, ApprovalRequest{Environment: "production", By: "bob"}, "production was already approved by alice")
	}, time.Hour)
	st := f.run()
	require.Equal(t, ReleasePromoted, st.Phase, st.Reason)
	require.Len(t, st.Approvals, 1)
	require.Equal(t, "approved", st.Approvals[0].Decision)
	require.Equal(t, "alice", st.Approvals[0].By)
	// production waited for the approval, an hour after staging was done
	require.True(t, f.started["backend/production"].Sub(f.promoted["frontend/staging"]) >= 50*time.Minute)
	// the channels heard it wait, with the commands and the deadline, then the decision
	require.Len(t, notices, 2)
	require.Equal(t, "release shop (backend=v2,frontend=v7) waits for approval of production", notices[0].In.Summary)
	require.Contains(t, notices[0].In.Detail, "switchyard release approve shop --env production --reason ...")
	require.Contains(t, notices[0].In.Detail, "then: abort")
	require.Equal(t, "release shop: production approved", notices[1].In.Summary)
	require.Equal(t, "alice CAB-123", notices[1].In.Detail)
	require.Equal(t, "webhook", notices[1].Spec.Alerts[notices[1].Channel].Kind)
}

func TestAnApprovalBeforeTheReleaseWaitsIsRefused(t *testing.T) {
	f := approvalFixture(t, release.OnTimeoutAbort)
	f.env.RegisterDelayedCallback(func() {
		f.update(Approve, ApprovalRequest{Environment: "production", By: "alice"}, "is not waiting for an approval")
		f.update(Reject, ApprovalRequest{Environment: "production", By: "bob", Reason: "not today"}, "is not waiting for an approval")
	}, time.Minute)
	f.env.RegisterDelayedCallback(func() {
		f.update(Reject, ApprovalRequest{Environment: "production", By: "bob", Reason: "not today"}, "")
	}, time.Hour)
	st := f.run()
	require.Equal(t, ReleaseRejected, st.Phase)
	require.Contains(t, st.Reason, "production rejected by bob: not today")
	require.NotContains(t, f.started, "backend/production")
}

func TestAnApprovalThatTimesOutDoesWhatTheSpecSays(t *testing.T) {
	for _, c := range []struct {
		onTimeout  string
		phase      ReleasePhase
		production bool   // production deployed
		staging    string // how staging's services end
	}{
		{release.OnTimeoutAbort, ReleaseFailed, false, "v2"},
		{release.OnTimeoutProceed, ReleasePromoted, true, "v2"},
		{release.OnTimeoutRollback, ReleaseRolledBack, false, "v1"},
	} {
		t.Run(c.onTimeout, func(t *testing.T) {
			f := approvalFixture(t, c.onTimeout)
			st := f.run()
			require.Equal(t, c.phase, st.Phase, st.Reason)
			require.Equal(t, "timed-out", st.Approvals[0].Decision)
			_, deployed := f.started["backend/production"]
			require.Equal(t, c.production, deployed)
			// rollback redeploys the previous version in staging
			require.Equal(t, map[string]string{"v2": "v2", "v1": "v1"}[c.staging], f.versions["backend/staging"])
			require.True(t, f.env.Now().Sub(f.started["backend/staging"]) >= 4*time.Hour || c.onTimeout == release.OnTimeoutRollback)
		})
	}
}

func TestAClosedWindowWaitsForItToOpenAndAFreezeRefuses(t *testing.T) {
	f := newRelease(t)
	f.in.Windows = window.Spec{Allow: []string{"Mon-Fri 09:00-16:00 UTC"}}
	saturday := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	f.env.SetStartTime(saturday)
	st := f.run()
	require.Equal(t, ReleasePromoted, st.Phase, st.Reason)
	require.Equal(t, time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC), f.started["backend/staging"].UTC(), "Monday 09:00")

	g := newRelease(t)
	g.in.Windows = window.Spec{Freeze: []string{"2026-12-20/2027-01-04"}}
	g.env.SetStartTime(time.Date(2026, 12, 24, 10, 0, 0, 0, time.UTC))
	st = g.run()
	require.Equal(t, ReleaseFailed, st.Phase)
	require.Contains(t, st.Reason, "staging is frozen (2026-12-20/2027-01-04)")
	require.Empty(t, g.started)
}

func TestReleaseStatusNamesEveryServiceInEveryEnvironment(t *testing.T) {
	f := newRelease(t)
	f.env.RegisterDelayedCallback(func() {
		v, err := f.env.QueryWorkflow(QueryStatus)
		require.NoError(t, err)
		var st ReleaseStatus
		require.NoError(t, v.Get(&st))
		require.Equal(t, ReleaseDeploying, st.Phase)
		got := ""
		for _, s := range st.Services {
			got += fmt.Sprintf("%s/%s=%s ", s.Service, s.Environment, s.Phase)
		}
		require.Equal(t, "backend/staging=deploying frontend/staging=pending backend/production=pending frontend/production=pending ", got)
	}, time.Minute)
	f.run()
}

func TestProductionStartsOnlyAfterStagingHeldThroughItsSoak(t *testing.T) {
	for _, unhealthy := range []bool{false, true} {
		t.Run(fmt.Sprintf("unhealthy=%v", unhealthy), func(t *testing.T) {
			f := newRelease(t)
			f.in.Environments[1].Soak = spec.Duration(30 * time.Minute)
			var checkedAt time.Time
			var checked []string
			f.env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in MonitorInput) (*incident.State, error) {
				checkedAt = workflow.Now(ctx)
				checked = append(checked, in.Spec.Name+"/"+in.Spec.Environment)
				ok := !(unhealthy && in.Spec.Name == "frontend")
				return &incident.State{Results: []rollout.CheckResult{{Name: "health:live", Passed: ok, Detail: "GET /healthz: status 503"}}}, nil
			}, workflow.RegisterOptions{Name: MonitorWorkflow})
			for _, svc := range []string{"backend", "frontend"} {
				sp := f.in.Environments[0].Specs[svc]
				sp.Monitor.Every = spec.Duration(15 * time.Minute) // two passes through a 30m soak
				f.in.Environments[0].Specs[svc] = sp
			}
			st := f.run()
			if unhealthy {
				// the first pass, halfway through the soak, finds it
				require.ElementsMatch(t, []string{"backend/staging", "frontend/staging"}, checked)
				require.Equal(t, 15*time.Minute, checkedAt.Sub(f.promoted["frontend/staging"]).Round(time.Minute))
				require.Equal(t, ReleaseFailed, st.Phase)
				require.Contains(t, st.Reason, "staging did not hold through its soak: frontend: health:live: GET /healthz: status 503")
				require.NotContains(t, f.started, "backend/production")
				return
			}
			require.ElementsMatch(t, []string{"backend/staging", "frontend/staging", "backend/staging", "frontend/staging"}, checked)
			require.True(t, checkedAt.Sub(f.promoted["frontend/staging"]) >= 30*time.Minute, "the last pass ends the soak")
			require.Equal(t, ReleasePromoted, st.Phase, st.Reason)
			require.False(t, f.started["backend/production"].Before(checkedAt))
		})
	}
}

func TestAnApprovalSentAsASignalFromTheWebUICountsOnceAndIsValidated(t *testing.T) {
	f := approvalFixture(t, release.OnTimeoutAbort)
	f.env.RegisterDelayedCallback(func() {
		f.env.SignalWorkflow(Approve, ApprovalRequest{Environment: "production", By: "mallory"}) // not an approver: ignored
		f.env.SignalWorkflow(Approve, ApprovalRequest{Environment: "production", By: "bob", Reason: "from the Web UI"})
	}, time.Hour)
	st := f.run()
	require.Equal(t, ReleasePromoted, st.Phase, st.Reason)
	require.Equal(t, "approved", st.Approvals[0].Decision)
	require.Equal(t, "bob", st.Approvals[0].By)
	var ignored bool
	for _, e := range st.Events {
		ignored = ignored || strings.Contains(e.Message, "signal approve ignored: mallory may not approve production")
	}
	require.True(t, ignored, "the refused signal is recorded")
}

// With twoPeople, whoever started the release may not approve it: neither
// the principal the Temporal server verified for its start nor the name its
// client sent.
func TestTwoPeopleRefusesTheRequestersOwnApprovalByTheVerifiedPrincipal(t *testing.T) {
	f := approvalFixture(t, release.OnTimeoutAbort)
	for i := range f.in.Environments {
		f.in.Environments[i].Approval.Approvers = nil
		f.in.Environments[i].Approval.TwoPeople = true
	}
	f.in.By = "ci-bot" // what the client typed
	f.env.RegisterActivity(&activities.Activities{})
	f.env.OnActivity(acts.StartedBy, mock.Anything).Return("jwt:carol@example.com", nil)
	f.env.RegisterDelayedCallback(func() {
		f.update(Approve, ApprovalRequest{Environment: "production", By: "carol@example.com (dashboard)"}, "carol@example.com started release shop and may not also approve production: it needs a second person")
		f.update(Approve, ApprovalRequest{Environment: "production", By: "ci-bot"}, "ci-bot started release shop")
		f.update(Approve, ApprovalRequest{Environment: "production", By: "dave@example.com (dashboard)"}, "")
	}, time.Hour)
	st := f.run()
	require.Equal(t, ReleasePromoted, st.Phase, st.Reason)
	require.Equal(t, "jwt:carol@example.com", st.StartedBy)
	require.Equal(t, "dave@example.com (dashboard)", st.Approvals[0].By)
}
