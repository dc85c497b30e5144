package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/window"
)

// fixture is a Deployment under the SDK's test environment with mocked
// activities: the router starts with blue live and records every shift.
type fixture struct {
	t       *testing.T
	env     *testsuite.TestWorkflowEnvironment
	in      DeploymentInput
	shifts  []rollout.Weights
	shiftAt []time.Duration
	start   time.Time
	retired []rollout.Slot
	retAt   []time.Duration
	events  []string
	pending int // updates sent but not answered
	analyze func() rollout.CheckResult
	weights rollout.Weights
	verify  []rollout.CheckResult
	// onVerify, when set, is called as the slot is verified
	onVerify func()
	// routes are the routes each Shift put in force (nil: by weight only)
	routes []*rollout.Routes
}

func testSpec() spec.Service {
	d := spec.Duration(0)
	return spec.Service{
		Name: "api", Environment: "production", Platform: "process",
		Run: spec.Run{Command: []string{"./api"}, Host: "127.0.0.1", Ports: spec.SlotPorts{Blue: 9001, Green: 9002},
			StartTimeout: spec.Duration(10 * time.Second), StopTimeout: spec.Duration(5 * time.Second)},
		Router: spec.Router{Kind: "haproxy"},
		Checks: spec.Checks{Health: spec.Health{Timeout: spec.Duration(30 * time.Second)}},
		Rollout: spec.Rollout{
			Steps: []int{10, 25, 50, 75, 100}, Bake: spec.Duration(time.Minute),
			Analysis:       spec.Analysis{Interval: spec.Duration(20 * time.Second)},
			ScaleDownDelay: &d,
		},
	}
}

func newFixture(t *testing.T) *fixture {
	var ts testsuite.WorkflowTestSuite
	f := &fixture{t: t, env: ts.NewTestWorkflowEnvironment(), weights: rollout.Weights{Blue: 100}}
	f.in = DeploymentInput{Spec: testSpec(), Version: "v2", By: "test"}
	f.analyze = func() rollout.CheckResult {
		return rollout.CheckResult{Name: "analysis", Passed: true, Source: "haproxy-stats"}
	}
	f.verify = []rollout.CheckResult{{Name: "health", Passed: true}, {Name: "performance", Passed: true}}
	env := f.env
	env.RegisterWorkflow(Deployment)
	env.RegisterWorkflowWithOptions(ServiceLock, workflow.RegisterOptions{Name: ServiceLockWorkflow})
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(acts.ReadState, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.ReadStateInput) (*activities.State, error) {
			return &activities.State{Weights: f.weights, Blue: rollout.Instance{Slot: rollout.Blue, Running: true, Version: "v1"}}, nil
		})
	env.OnActivity(acts.Provision, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ProvisionInput) (*rollout.Instance, error) {
			return &rollout.Instance{Slot: in.Slot, Running: true, Version: in.Version, PID: 42}, nil
		})
	env.OnActivity(acts.Verify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.VerifyInput) ([]rollout.CheckResult, error) {
			if f.onVerify != nil {
				f.onVerify()
			}
			return f.verify, nil
		})
	env.OnActivity(acts.Shift, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ShiftInput) (*activities.ShiftResult, error) {
			f.shifts = append(f.shifts, in.Weights)
			f.routes = append(f.routes, in.Routes)
			f.shiftAt = append(f.shiftAt, env.Now().Sub(f.start))
			return &activities.ShiftResult{Weights: in.Weights, Source: "haproxy-stats"}, nil
		})
	env.OnActivity(acts.Analyze, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.AnalyzeInput) (*rollout.CheckResult, error) {
			r := f.analyze()
			return &r, nil
		})
	env.OnActivity(acts.Notify, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.NotifyInput) (string, error) {
			f.events = append(f.events, in.In.Summary)
			return "", nil
		})
	env.OnActivity(acts.Retire, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RetireInput) error {
			f.retired = append(f.retired, in.Slot)
			f.retAt = append(f.retAt, env.Now().Sub(f.start))
			return nil
		})
	return f
}

func (f *fixture) run() {
	f.start = f.env.Now()
	f.env.ExecuteWorkflow(Deployment, f.in)
	require.True(f.t, f.env.IsWorkflowCompleted())
	require.Zero(f.t, f.pending, "every update was answered")
}

func (f *fixture) status() *Status {
	v, err := f.env.QueryWorkflow(QueryStatus)
	require.NoError(f.t, err)
	var st Status
	require.NoError(f.t, v.Get(&st))
	return &st
}

// at runs fn once the workflow clock has advanced by d.
func (f *fixture) at(d time.Duration, fn func()) { f.env.RegisterDelayedCallback(fn, d) }

// update sends an Update (see sendUpdate).
func (f *fixture) update(name string, arg any, want string) {
	var args []any
	if arg != nil {
		args = append(args, arg)
	}
	sendUpdate(f.t, f.env, &f.pending, name, want, args...)
}

// sendUpdate sends an Update; the test environment answers later, so the
// outcome is checked in a callback: want "" expects success, otherwise an
// error containing want. pending counts the answers still to come.
func sendUpdate(t *testing.T, env *testsuite.TestWorkflowEnvironment, pending *int, name, want string, args ...any) {
	*pending++
	check := func(err error) {
		*pending--
		if want == "" {
			require.NoError(t, err, "update %s", name)
		} else {
			require.ErrorContains(t, err, want, "update %s", name)
		}
	}
	env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{OnReject: check, OnAccept: func() {},
		OnComplete: func(_ any, err error) { check(err) }}, args...)
}

func green(pct int) rollout.Weights { return rollout.Split(rollout.Green, pct) }

func TestRolloutShiftsThroughEveryStepWithItsBakeAndPromotes(t *testing.T) {
	f := newFixture(t)
	f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, []rollout.Weights{green(10), green(25), green(50), green(75), green(100)}, f.shifts)
	// each step waits a full bake (1m) before the next
	for i := 1; i < len(f.shiftAt); i++ {
		require.Equal(t, time.Minute, f.shiftAt[i]-f.shiftAt[i-1], "bake between step %d and %d", i, i+1)
	}
	var st Status
	require.NoError(t, f.env.GetWorkflowResult(&st))
	require.Equal(t, rollout.PhasePromoted, st.Phase)
	require.Equal(t, rollout.Green, st.Stable)
	require.Equal(t, "v1", st.PreviousVersion)
	require.Equal(t, []rollout.Slot{rollout.Blue}, f.retired, "the old slot is retired after the scale-down delay")
}

func TestOldSlotIsKeptWarmForTheScaleDownDelay(t *testing.T) {
	f := newFixture(t)
	d := spec.Duration(10 * time.Minute)
	f.in.Spec.Rollout.ScaleDownDelay = &d
	f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, []time.Duration{5*time.Minute + 10*time.Minute}, f.retAt, "5 bakes of 1m, then 10m warm")
}

func TestFirstDeploymentGoesStraightTo100(t *testing.T) {
	f := newFixture(t)
	f.weights = rollout.Weights{}
	f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, []rollout.Weights{{Blue: 100}}, f.shifts)
	require.Empty(t, f.retired)
}

func TestPauseStopsTheBakeClockAndResumeContinues(t *testing.T) {
	f := newFixture(t)
	f.at(30*time.Second, func() { f.update(Pause, nil, "") })
	f.at(10*time.Minute, func() {
		st := f.status()
		require.True(t, st.Paused)
		require.Equal(t, 0, st.Step, "still on the first step while paused")
		f.update(Resume, nil, "")
	})
	f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.Len(t, f.shifts, 5)
	// the first bake had 30s left when it was paused at 30s; resumed at 10m
	require.Equal(t, 10*time.Minute+30*time.Second, f.shiftAt[1]-f.shiftAt[0])
}

func TestAbortPutsAllTrafficBackOnTheStableSlot(t *testing.T) {
	f := newFixture(t)
	f.at(2*time.Minute+10*time.Second, func() {
		f.update(Abort, AbortRequest{Reason: "p99 up", By: "oncall"}, "")
	})
	f.run()
	var app *temporal.ApplicationError
	require.True(t, errors.As(f.env.GetWorkflowError(), &app))
	require.Equal(t, string(ErrRolledBack), app.Type())
	require.Contains(t, app.Message(), "p99 up")
	require.Equal(t, []rollout.Weights{green(10), green(25), green(50), {Blue: 100}}, f.shifts)
	require.Equal(t, 2*time.Minute+10*time.Second, f.shiftAt[3], "the rollback is applied the moment the abort arrives")
	require.Empty(t, f.retired, "the bad slot is left running for inspection")
	st := f.status()
	require.Equal(t, rollout.PhaseRolledBack, st.Phase)
	require.Equal(t, rollout.Weights{Blue: 100}, st.Weights)
}

func TestAbortBySignalWorksLikeTheUpdate(t *testing.T) {
	f := newFixture(t)
	f.at(90*time.Second, func() { f.env.SignalWorkflow(Abort, AbortRequest{Reason: "from the Web UI"}) })
	f.run()
	require.Error(t, f.env.GetWorkflowError())
	require.Equal(t, rollout.Weights{Blue: 100}, f.shifts[len(f.shifts)-1])
	require.Contains(t, f.status().Reason, "from the Web UI")
}

func TestFailedAnalysisRollsBackByItself(t *testing.T) {
	f := newFixture(t)
	calls := 0
	f.analyze = func() rollout.CheckResult {
		calls++
		return rollout.CheckResult{Name: "analysis", Passed: calls < 4, Detail: "error rate 12% over the 1% limit"}
	}
	f.in.Spec.Rollout.RetireOnFailure = true
	f.run()
	var app *temporal.ApplicationError
	require.True(t, errors.As(f.env.GetWorkflowError(), &app))
	require.Equal(t, string(ErrRolledBack), app.Type())
	require.Contains(t, app.Message(), "error rate 12%")
	// 3 analyses per 1m bake at a 20s interval: the 4th is 20s into step 2
	require.Equal(t, []rollout.Weights{green(10), green(25), {Blue: 100}}, f.shifts)
	require.Equal(t, []rollout.Slot{rollout.Green}, f.retired, "retireOnFailure stops the bad slot")
}

func TestFailedVerificationLeavesTheLiveSlotUntouched(t *testing.T) {
	f := newFixture(t)
	f.verify = []rollout.CheckResult{{Name: "health", Passed: true}, {Name: "smoke GET /", Passed: false, Detail: "status 500, want 200"}}
	f.run()
	var app *temporal.ApplicationError
	require.True(t, errors.As(f.env.GetWorkflowError(), &app))
	require.Equal(t, string(ErrFailed), app.Type())
	require.Contains(t, app.Message(), "status 500")
	require.Empty(t, f.shifts, "no traffic moved")
}

func TestPromoteFullSkipsTheRemainingSteps(t *testing.T) {
	f := newFixture(t)
	f.at(70*time.Second, func() { f.update(Promote, PromoteRequest{Full: true}, "") })
	f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, []rollout.Weights{green(10), green(25), green(100)}, f.shifts)
	require.Equal(t, 70*time.Second, f.shiftAt[2])
}

func TestPromoteSkipsOnlyTheCurrentBake(t *testing.T) {
	f := newFixture(t)
	f.at(10*time.Second, func() { f.update(Promote, PromoteRequest{}, "") })
	f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, []rollout.Weights{green(10), green(25), green(50), green(75), green(100)}, f.shifts)
	require.Equal(t, 10*time.Second, f.shiftAt[1])
	require.Equal(t, 70*time.Second, f.shiftAt[2])
}

func TestValidatorsRefuseWhatMakesNoSense(t *testing.T) {
	f := newFixture(t)
	d := spec.Duration(10 * time.Minute)
	f.in.Spec.Rollout.ScaleDownDelay = &d
	f.at(5*time.Second, func() {
		f.update(Resume, nil, "not paused")
		f.update(Pause, nil, "")
	})
	f.at(6*time.Second, func() { f.update(Pause, nil, "already paused") })
	f.at(7*time.Second, func() { f.update(Resume, nil, "") })
	// promoted, old slot kept warm: nothing to promote or pause any more
	f.at(6*time.Minute, func() {
		require.Equal(t, rollout.PhaseScalingDown, f.status().Phase)
		f.update(Promote, PromoteRequest{}, "only a rollout that is shifting")
		f.update(Pause, nil, "already promoted")
	})
	f.run()
	require.NoError(t, f.env.GetWorkflowError())
}

func TestAbortInsideTheScaleDownWindowGoesBackToTheWarmSlot(t *testing.T) {
	f := newFixture(t)
	d := spec.Duration(10 * time.Minute)
	f.in.Spec.Rollout.ScaleDownDelay = &d
	f.at(7*time.Minute, func() { f.update(Abort, AbortRequest{Reason: "errors after promotion"}, "") })
	f.run()
	require.ErrorContains(t, f.env.GetWorkflowError(), "errors after promotion")
	require.Equal(t, rollout.Weights{Blue: 100}, f.shifts[len(f.shifts)-1])
	require.Equal(t, 7*time.Minute, f.shiftAt[len(f.shiftAt)-1])
	require.Empty(t, f.retired, "neither slot is retired")
}

func TestASecondAbortSignalIsIgnoredAndRecorded(t *testing.T) {
	f := newFixture(t)
	f.at(30*time.Second, func() {
		f.env.SignalWorkflow(Abort, AbortRequest{Reason: "first"})
		f.env.SignalWorkflow(Abort, AbortRequest{Reason: "second"})
	})
	f.run()
	require.Error(t, f.env.GetWorkflowError())
	st := f.status()
	require.Equal(t, "first", st.Reason)
	found := false
	for _, e := range st.Events {
		found = found || (e.Message == "signal abort ignored: already aborting (first)")
	}
	require.True(t, found, "the ignored signal is in the events: %v", st.Events)
	// exactly one rollback shift
	require.Equal(t, []rollout.Weights{green(10), {Blue: 100}}, f.shifts)
}

func TestSplitTrafficIsRefusedBeforeAnythingChanges(t *testing.T) {
	f := newFixture(t)
	f.weights = rollout.Weights{Blue: 50, Green: 50}
	f.run()
	require.ErrorContains(t, f.env.GetWorkflowError(), "traffic is split")
	require.Empty(t, f.shifts)
}

func TestCancellingTheWorkflowRollsBackInsteadOfLeavingTrafficSplit(t *testing.T) {
	f := newFixture(t)
	f.at(90*time.Second, func() { f.env.CancelWorkflow() })
	f.run()
	require.ErrorContains(t, f.env.GetWorkflowError(), "cancelled")
	require.Equal(t, []rollout.Weights{green(10), green(25), {Blue: 100}}, f.shifts)
}

func TestRolloutEventsGoToTheChannelsWhenTheSpecAsks(t *testing.T) {
	f := newFixture(t)
	f.run()
	require.Empty(t, f.events, "no events unless monitor.notifyEvents")

	g := newFixture(t)
	g.in.Spec.Monitor.NotifyEvents = true
	g.in.Spec.Alerts = []spec.Alert{{Kind: "slack"}}
	g.at(90*time.Second, func() { g.update(Abort, AbortRequest{Reason: "p99 up"}, "") })
	g.run()
	require.Equal(t, []string{"rollout of v2 started (previous v1)", "v2 rolled back to v1: p99 up"}, g.events)
}

func TestARolloutOutsideItsWindowWaitsAndAFreezeStopsItButForAnEmergency(t *testing.T) {
	f := newFixture(t)
	f.in.Spec.Windows = window.Spec{Allow: []string{"Mon-Fri 09:00-16:00 UTC"}}
	saturday := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	f.env.SetStartTime(saturday)
	f.at(time.Hour, func() {
		st := f.status()
		require.Equal(t, rollout.PhaseWaiting, st.Phase)
		require.Equal(t, time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC), st.WaitingUntil.UTC())
	})
	f.run()
	require.NoError(t, f.env.GetWorkflowError())
	// the first traffic step comes on Monday morning, 45 hours on
	require.Equal(t, 45*time.Hour, f.shiftAt[0].Round(time.Hour))

	g := newFixture(t)
	g.in.Spec.Windows = window.Spec{Freeze: []string{"2026-12-20/2027-01-04"}}
	g.env.SetStartTime(time.Date(2026, 12, 24, 10, 0, 0, 0, time.UTC))
	g.run()
	require.ErrorContains(t, g.env.GetWorkflowError(), "checking the calendar: frozen (2026-12-20/2027-01-04)")
	require.Empty(t, g.shifts)

	h := newFixture(t)
	h.in.Spec.Windows = g.in.Spec.Windows
	h.in.Emergency = "hotfix INC-42"
	h.env.SetStartTime(time.Date(2026, 12, 24, 10, 0, 0, 0, time.UTC))
	h.run()
	require.NoError(t, h.env.GetWorkflowError())
	require.Len(t, h.shifts, 5)
}

func measured(decision string) rollout.CheckResult {
	v := 0.3
	r := rollout.CheckResult{Name: "analysis", Passed: decision != rollout.Fail, Inconclusive: decision == rollout.Inconclusive,
		Source: "prometheus", Detail: decision, Measurements: []rollout.Measurement{
			{Metric: "p99", Query: `histogram_quantile(0.99, x{slot="green"})`, Value: &v, Threshold: "≤ 0.25", Decision: decision, Reason: decision + " reason"}}}
	return r
}

// An inconclusive analysis (20 s into step 1) pauses the rollout: step 2
// waits for the resume at 5 min, and the measurement is in the status.
func TestAnInconclusiveAnalysisPausesUntilAPersonResumes(t *testing.T) {
	f := newFixture(t)
	calls := 0
	f.analyze = func() rollout.CheckResult {
		calls++
		if calls == 1 {
			return measured(rollout.Inconclusive)
		}
		return measured(rollout.Pass)
	}
	f.at(3*time.Minute, func() {
		st := f.status()
		require.True(t, st.Paused)
		require.Equal(t, []rollout.Weights{green(10)}, f.shifts)
		require.Equal(t, rollout.Inconclusive, st.Measurements[0].Decision)
		require.Equal(t, 10, st.Measurements[0].Weight)
		require.Contains(t, st.Events[len(st.Events)-1].Message, "analysis inconclusive at 10%, paused")
	})
	f.at(5*time.Minute, func() { f.update(Resume, nil, "") })
	f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.Len(t, f.shifts, 5)
	// the bake's clock stopped at 20 s: 40 s more after the resume
	require.Equal(t, 5*time.Minute+40*time.Second, f.shiftAt[1])
}

// failureLimit 1: one failed measurement in a step is tolerated (and said),
// a second in the same step rolls back; the count starts again each step.
func TestFailureLimitCountsFailedMeasurementsPerStep(t *testing.T) {
	for _, c := range []struct {
		failAt     []int // analysis calls that fail (3 per step)
		rolledBack bool
	}{{[]int{3, 4}, false}, {[]int{2, 3}, true}} {
		f := newFixture(t)
		f.in.Spec.Rollout.Analysis.Metrics = []spec.Metric{{Name: "p99", FailureLimit: 1}}
		calls := 0
		f.analyze = func() rollout.CheckResult {
			calls++
			for _, n := range c.failAt {
				if n == calls {
					return measured(rollout.Fail)
				}
			}
			return measured(rollout.Pass)
		}
		f.run()
		if c.rolledBack {
			require.Error(t, f.env.GetWorkflowError(), "fails at %v", c.failAt)
			require.Equal(t, []rollout.Weights{green(10), {Blue: 100}}, f.shifts)
			require.Contains(t, f.status().Reason, "p99: fail")
		} else {
			require.NoError(t, f.env.GetWorkflowError(), "fails at %v", c.failAt)
			var msgs []string
			for _, e := range f.status().Events {
				msgs = append(msgs, e.Message)
			}
			require.Contains(t, msgs, "p99 failed (1 of 1 tolerated this step): fail reason")
		}
	}
}

// The error budget, as the Budget activity reads it: a fast burn holds the
// rollout before it touches anything (an emergency goes through, recorded);
// a low budget doubles the bakes.
func TestTheErrorBudgetHoldsAFastBurnAndSlowsBakesWhenLow(t *testing.T) {
	withBudget := func(b analysis.Budget, emergency string) *fixture {
		f := newFixture(t)
		f.in.Spec.SLOs = []spec.SLO{{Name: "availability", Objective: 0.999, SlowBakesBelow: 0.25, SlowBakesBy: 2}}
		f.in.Emergency = emergency
		f.env.OnActivity(acts.Budget, mock.Anything, mock.Anything).Return(
			func(context.Context, activities.BudgetInput) ([]analysis.Budget, error) {
				return []analysis.Budget{b}, nil
			})
		return f
	}
	burning := analysis.Budget{SLO: "availability", FastBurn: true, Why: "1h burns 20.0× and 5m 30.0×, both over 14.4×", Remaining: 0.5}
	f := withBudget(burning, "")
	f.run()
	require.Equal(t, ErrFailed, EndingOf(f.env.GetWorkflowError()))
	require.Contains(t, f.env.GetWorkflowError().Error(), "held: SLO availability burns its error budget fast (1h burns 20.0×")
	require.Empty(t, f.shifts, "a held rollout touches nothing")

	f = withBudget(burning, "the fix for the outage")
	f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.Contains(t, strings.Join(eventTexts(f.status()), "\n"), "through the error budget of availability: emergency: the fix for the outage")

	f = withBudget(analysis.Budget{SLO: "availability", Remaining: 0.1}, "")
	f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.Len(t, f.shifts, 5)
	require.Equal(t, 2*time.Minute, f.shiftAt[1]-f.shiftAt[0], "a 1m bake doubled while a tenth of the budget is left")
}

func eventTexts(st *Status) []string {
	var out []string
	for _, e := range st.Events {
		out = append(out, e.Message)
	}
	return out
}

// Inside the warm window the guard judges the promoted version every
// interval; a metric's failureLimit holds over the whole guard: the first
// failure is tolerated, the second rolls back to the warm slot.
func TestTheGuardToleratesFailureLimitThenRollsBackToTheWarmSlot(t *testing.T) {
	f := newFixture(t)
	warm := spec.Duration(5 * time.Minute)
	f.in.Spec.Rollout.ScaleDownDelay = &warm
	f.in.Spec.Rollout.Guard = &spec.Guard{For: spec.Duration(time.Hour), Interval: spec.Duration(30 * time.Second),
		Metrics: []spec.Metric{{Name: "errors", Source: spec.SourceCounters, Query: "error_rate", FailureLimit: 1}}}
	analyses, guarded := 0, 0
	f.analyze = func() rollout.CheckResult {
		if analyses++; analyses <= 15 { // the bakes: five steps, a 1m bake judged every 20s
			return rollout.CheckResult{Name: "analysis", Passed: true}
		}
		guarded++
		v, limit := 0.3, 0.05
		return rollout.CheckResult{Name: "analysis", Passed: false, Detail: "errors: fail",
			Measurements: []rollout.Measurement{{Metric: "errors", Value: &v, Limit: &limit, Decision: rollout.Fail, Reason: "0.3 is above the maximum 0.05"}}}
	}
	f.run()
	require.Equal(t, ErrRolledBack, EndingOf(f.env.GetWorkflowError()))
	require.Contains(t, f.env.GetWorkflowError().Error(), "guard: errors: fail (value 0.3): 0.3 is above the maximum 0.05")
	require.Equal(t, 2, guarded, "one failure tolerated (failureLimit 1), the second breaches")
	require.Equal(t, rollout.Weights{Blue: 100}, f.shifts[len(f.shifts)-1], "back on the warm slot")
	require.Equal(t, time.Minute+2*30*time.Second, f.shiftAt[len(f.shiftAt)-1]-f.shiftAt[4], "the last bake, then two guard intervals")
}
