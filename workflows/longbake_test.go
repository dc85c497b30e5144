package workflows

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// TestADayOfBakeAtOneSecondContinuesAsNewAndAnAbortAtItsEndLands runs a
// rollout whose first step bakes 24 h with an analysis every second, on
// the SDK's time-skipping test environment: every run continues as new
// before its history grows long (at most maxAnalysesPerRun analyses, its
// status under 256 KB), the traffic stays where it was across runs (no
// shift but the first), and an abort near the end of the day rolls back.
func TestADayOfBakeAtOneSecondContinuesAsNewAndAnAbortAtItsEndLands(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 86,400 analyses on the test environment take a while")
	}
	in := DeploymentInput{Spec: testSpec(), Version: "v2", By: "test"}
	in.Spec.Rollout.Steps = []int{50, 100}
	in.Spec.Rollout.Bake = spec.Duration(24 * time.Hour)
	in.Spec.Rollout.Analysis.Interval = spec.Duration(time.Second)
	var shifts []rollout.Weights
	analyses, runs := 0, 0
	for {
		runs++
		require.Less(t, runs, 200, "runs")
		f := newFixture(t)
		f.in = in
		if c := in.Continued; c != nil {
			f.weights = c.Status.Weights
		}
		perRun := 0
		f.analyze = func() rollout.CheckResult {
			perRun++
			analyses++
			v, limit := 0.001, 0.05
			return rollout.CheckResult{Name: "analysis", Passed: true, Source: "prometheus", Detail: "error-rate: pass",
				Measurements: []rollout.Measurement{{Metric: "error-rate", Query: `sum(rate(errors{slot="green"}[1s]))`, Value: &v, Limit: &limit,
					Threshold: "max 0.05", Decision: rollout.Pass, Reason: "0.001 ≤ 0.05"}}}
		}
		last := in.Continued != nil && in.Continued.Remaining <= time.Duration(maxAnalysesPerRun)*time.Second
		if last {
			// the day's last run: an abort 10 s before the bake ends
			f.at(in.Continued.Remaining-10*time.Second, func() {
				f.update(Abort, AbortRequest{Reason: "seen enough", By: "on-call"}, "")
			})
		}
		f.start = f.env.Now()
		f.env.ExecuteWorkflow(Deployment, f.in)
		require.True(t, f.env.IsWorkflowCompleted())
		shifts = append(shifts, f.shifts...)
		require.LessOrEqual(t, perRun, maxAnalysesPerRun, "analyses in run %d", runs)
		err := f.env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		if errors.As(err, &can) {
			var next DeploymentInput
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
			b, _ := json.Marshal(next.Continued.Status)
			require.Less(t, len(b), 256<<10, "the status carried to run %d", runs+1)
			require.LessOrEqual(t, len(next.Continued.Status.Events), MaxEvents)
			in = next
			continue
		}
		require.True(t, last, "run %d ended without continuing before the day was over: %v", runs, err)
		var app *temporal.ApplicationError
		require.ErrorAs(t, err, &app)
		require.Equal(t, string(ErrRolledBack), app.Type(), "%v", err)
		var st Status
		require.NoError(t, app.Details(&st))
		require.Equal(t, rollout.PhaseRolledBack, st.Phase)
		require.Contains(t, st.Reason, "seen enough")
		require.Greater(t, st.EventsDropped, 0)
		break
	}
	// one shift to 50 %, then the abort's return to blue
	require.Equal(t, []rollout.Weights{{Blue: 50, Green: 50}, {Blue: 100}}, shifts)
	require.GreaterOrEqual(t, analyses, 86_000)
	t.Logf("24 h of bake at 1 s: %d analyses in %d runs (at most %d a run), the abort at its end rolled back", analyses, runs, maxAnalysesPerRun)
}
