package workflows

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// rbFixture: v2 in green was promoted (100 %), v1 still warm in blue.
type rbFixture struct {
	t       *testing.T
	env     *testsuite.TestWorkflowEnvironment
	in      RollbackInput
	shifts  []rollout.Weights
	shiftAt []time.Duration
	start   time.Time
	retired []rollout.Slot
	blueUp  bool
	weights rollout.Weights
}

func newRB(t *testing.T, strategy Strategy) *rbFixture {
	var ts testsuite.WorkflowTestSuite
	f := &rbFixture{t: t, env: ts.NewTestWorkflowEnvironment(), blueUp: true, weights: rollout.Weights{Green: 100}}
	s := testSpec()
	s.Rollback.Gradual = spec.Gradual{Duration: spec.Duration(10 * time.Minute), Steps: []int{75, 50, 25, 0}}
	f.in = RollbackInput{Spec: s, Strategy: strategy, Reason: "p99 up", By: "oncall", From: rollout.Green, To: rollout.Blue,
		BadVersion: "v2", PreviousVersion: "v1"}
	env := f.env
	env.RegisterWorkflow(Rollback)
	env.RegisterWorkflowWithOptions(ServiceLock, workflow.RegisterOptions{Name: ServiceLockWorkflow})
	env.RegisterActivity(&activities.Activities{})
	env.OnActivity(acts.ReadState, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.ReadStateInput) (*activities.State, error) {
			return &activities.State{Weights: f.weights,
				Blue:  rollout.Instance{Slot: rollout.Blue, Running: f.blueUp, Version: "v1", Addr: "127.0.0.1:9001"},
				Green: rollout.Instance{Slot: rollout.Green, Running: true, Version: "v2", Addr: "127.0.0.1:9002"}}, nil
		})
	env.OnActivity(acts.Shift, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ShiftInput) (*activities.ShiftResult, error) {
			f.shifts = append(f.shifts, in.Weights)
			f.shiftAt = append(f.shiftAt, env.Now().Sub(f.start))
			return &activities.ShiftResult{Weights: in.Weights}, nil
		})
	env.OnActivity(acts.Analyze, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.AnalyzeInput) (*rollout.CheckResult, error) {
			return &rollout.CheckResult{Name: "analysis", Slot: in.Slot, Passed: true}, nil
		})
	env.OnActivity(acts.Retire, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.RetireInput) error {
			f.retired = append(f.retired, in.Slot)
			return nil
		})
	return f
}

func (f *rbFixture) run() *RollbackReport {
	f.start = f.env.Now()
	f.env.ExecuteWorkflow(Rollback, f.in)
	require.True(f.t, f.env.IsWorkflowCompleted())
	v, err := f.env.QueryWorkflow(QueryStatus)
	require.NoError(f.t, err)
	var rep RollbackReport
	require.NoError(f.t, v.Get(&rep))
	return &rep
}

func (f *rbFixture) update(name, want string) {
	var pending int
	sendUpdate(f.t, f.env, &pending, name, want)
}

func TestGradualRollbackTakesExactlyItsDurationInOrder(t *testing.T) {
	f := newRB(t, Gradual)
	rep := f.run()
	require.NoError(t, f.env.GetWorkflowError())
	g := func(p int) rollout.Weights { return rollout.Split(rollout.Green, p) }
	require.Equal(t, []rollout.Weights{g(75), g(50), g(25), g(0)}, f.shifts)
	require.Equal(t, []time.Duration{150 * time.Second, 300 * time.Second, 450 * time.Second, 600 * time.Second}, f.shiftAt)
	require.Equal(t, 10*time.Minute, rep.Duration())
	require.Equal(t, rollout.PhaseRolledBack, rep.Phase)
	require.Len(t, rep.Timeline, 4)
	require.Len(t, rep.Checks, 3, "the previous slot is analysed before each later step")
}

func TestPausingAGradualRollbackStopsItsClock(t *testing.T) {
	f := newRB(t, Gradual)
	f.env.RegisterDelayedCallback(func() { f.update(Pause, "") }, 3*time.Minute)
	f.env.RegisterDelayedCallback(func() { f.update(Pause, "already paused") }, 4*time.Minute)
	f.env.RegisterDelayedCallback(func() { f.update(Resume, "") }, 13*time.Minute)
	rep := f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, 20*time.Minute, rep.Duration(), "10m of rollback plus 10m paused")
	require.Equal(t, 150*time.Second, f.shiftAt[0])
	require.Equal(t, 15*time.Minute, f.shiftAt[1], "the 2nd step had 2m left when paused at 3m; resumed at 13m")
}

func TestEscalateJumpsTo100AtOnce(t *testing.T) {
	f := newRB(t, Gradual)
	f.env.RegisterDelayedCallback(func() { f.update(Escalate, "") }, 4*time.Minute)
	rep := f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, []rollout.Weights{rollout.Split(rollout.Green, 75), {Blue: 100}}, f.shifts)
	require.Equal(t, 4*time.Minute, f.shiftAt[1])
	require.Equal(t, 4*time.Minute, rep.Duration())
}

func TestSwapFlipsAtOnceAndKeepsTheBadSlotRunning(t *testing.T) {
	f := newRB(t, Swap)
	f.in.Spec.Rollout.RetireOnFailure = true // swap keeps it all the same
	rep := f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, []rollout.Weights{{Blue: 100}}, f.shifts)
	require.Empty(t, f.retired)
	require.Equal(t, "127.0.0.1:9002", rep.BadSlotAddr)
	last := rep.Events[len(rep.Events)-2].Message
	require.True(t, strings.Contains(last, "keeps running untouched at 127.0.0.1:9002"), last)
}

func TestImmediateRollbackIsOneChange(t *testing.T) {
	f := newRB(t, Immediate)
	f.env.RegisterDelayedCallback(func() { f.update(Pause, "only a gradual rollback can be paused") }, 0)
	rep := f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.Equal(t, []rollout.Weights{{Blue: 100}}, f.shifts)
	require.Equal(t, []time.Duration{0}, f.shiftAt)
	require.Equal(t, "oncall", rep.By)
}

func TestRollbackRefusesWhenThePreviousSlotIsGone(t *testing.T) {
	f := newRB(t, Immediate)
	f.blueUp = false
	rep := f.run()
	require.ErrorContains(t, f.env.GetWorkflowError(), "deploy it again: switchyard deploy api --env production --version v1")
	require.Empty(t, f.shifts, "the router is not touched")
	require.Equal(t, rollout.PhaseFailed, rep.Phase)
}

func TestRollbackOfWhatIsAlreadyBackIsRefused(t *testing.T) {
	f := newRB(t, Gradual)
	f.weights = rollout.Weights{Blue: 100}
	f.run()
	require.ErrorContains(t, f.env.GetWorkflowError(), "nothing to roll back")
	require.Empty(t, f.shifts)
}
