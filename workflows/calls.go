package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/internal/incident"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/schema"
	"github.com/switchyard/switchyard/internal/spec"
)

// Every activity is called through one function here, its options beside
// it: how long it may take (from the spec), how soon a lost worker is
// noticed, how often it is tried. The workflows read as what they do.

// liveness is the heartbeat timeout of the activities that keep alive
// (activities.keepAlive beats every 500 ms): a worker lost with one in
// flight is noticed this soon and the activity retried on another.
const liveness = 3 * time.Second

// options: the retry policy every activity shares; a bad input (a spec or
// environment to fix) is never retried.
func options(ctx workflow.Context, timeout, heartbeat time.Duration, attempts int32) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		HeartbeatTimeout:    heartbeat,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
			MaximumAttempts:        attempts,
			NonRetryableErrorTypes: []string{activities.ErrBadInput},
		},
	})
}

// readState reads the router's weights and what each slot runs.
func readState(ctx workflow.Context, in activities.ReadStateInput) (activities.State, error) {
	var st activities.State
	err := startReadState(ctx, in).Get(ctx, &st)
	return st, err
}

// startReadState is readState for a caller that does something else meanwhile.
func startReadState(ctx workflow.Context, in activities.ReadStateInput) workflow.Future {
	return workflow.ExecuteActivity(options(ctx, 30*time.Second, liveness, 5), acts.ReadState, in)
}

// lastMonitorState reads the incidents the service's last monitoring run left.
func lastMonitorState(ctx workflow.Context, query string) (*incident.State, error) {
	var last *incident.State
	err := workflow.ExecuteActivity(options(ctx, 30*time.Second, 0, 3), acts.LastMonitorState, query).Get(ctx, &last)
	return last, err
}

// monitorChecks checks the live environment: endpoints, a probe, headers.
func monitorChecks(ctx workflow.Context, in activities.MonitorChecksInput) (activities.MonitorChecksResult, error) {
	var checks activities.MonitorChecksResult
	err := workflow.ExecuteActivity(options(ctx, 2*time.Minute, 30*time.Second, 2), acts.MonitorChecks, in).Get(ctx, &checks)
	return checks, err
}

// buildArtifact runs the spec's build: as long as the spec allows, plus a minute.
func buildArtifact(ctx workflow.Context, s *spec.Service, in activities.BuildInput) (string, error) {
	var artifact string
	err := workflow.ExecuteActivity(options(ctx, s.Build.Timeout.D()+time.Minute, liveness, 2), acts.Build, in).Get(ctx, &artifact)
	return artifact, err
}

// runGates runs every gate, one after another: their timeouts add up.
func runGates(ctx workflow.Context, s *spec.Service, in activities.GatesInput) ([]rollout.CheckResult, error) {
	timeout := time.Minute
	for _, g := range s.Gates {
		timeout += g.Timeout.D()
	}
	var gates []rollout.CheckResult
	err := workflow.ExecuteActivity(options(ctx, timeout, liveness, 2), acts.Gates, in).Get(ctx, &gates)
	return gates, err
}

// provisionSlot starts the version in a slot, or finds it running: it may
// stop what ran there first.
func provisionSlot(ctx workflow.Context, s *spec.Service, in activities.ProvisionInput) (rollout.Instance, error) {
	var inst rollout.Instance
	err := workflow.ExecuteActivity(options(ctx, s.Run.StartTimeout.D()+s.Run.StopTimeout.D()+time.Minute, liveness, 3), acts.Provision, in).Get(ctx, &inst)
	return inst, err
}

// verifySlot runs health, smoke and performance checks on an idle slot.
func verifySlot(ctx workflow.Context, s *spec.Service, in activities.VerifyInput) ([]rollout.CheckResult, error) {
	var checks []rollout.CheckResult
	err := workflow.ExecuteActivity(options(ctx, s.Checks.Health.Timeout.D()+2*time.Minute, liveness, 2), acts.Verify, in).Get(ctx, &checks)
	return checks, err
}

// analyzeSlot judges a slot on the traffic it served: 20 s, and 30 s more
// per metric (each a query or two, retried). The one definition, for the
// rollout's bakes and the gradual rollback's steps alike.
func analyzeSlot(ctx workflow.Context, s *spec.Service, in activities.AnalyzeInput) (rollout.CheckResult, error) {
	metrics := len(s.Rollout.Analysis.Metrics)
	if in.Guard {
		metrics = len(s.Rollout.GuardMetrics())
	}
	timeout := 20*time.Second + time.Duration(metrics)*30*time.Second
	var res rollout.CheckResult
	err := workflow.ExecuteActivity(options(ctx, timeout, liveness, 3), acts.Analyze, in).Get(ctx, &res)
	return res, err
}

// readBudget reads the SLOs' error budgets: a few queries each, retried.
func readBudget(ctx workflow.Context, s *spec.Service) ([]analysis.Budget, error) {
	var out []analysis.Budget
	err := workflow.ExecuteActivity(options(ctx, 30*time.Second+time.Duration(len(s.SLOs))*30*time.Second, liveness, 3), acts.Budget,
		activities.BudgetInput{}).Get(ctx, &out)
	return out, err
}

// migrate runs a phase of the schema migrations: as long as the spec
// allows, heartbeating, so a lost worker's phase is retried at once (under
// the database lock, it never runs twice).
func migrate(ctx workflow.Context, s *spec.Service, in activities.SchemaInput) ([]schema.Step, error) {
	var steps []schema.Step
	err := workflow.ExecuteActivity(options(ctx, s.Migrations.Timeout.D()+time.Minute, liveness, 5), acts.Schema, in).Get(ctx, &steps)
	return steps, err
}

// shiftTraffic sets absolute weights: short, and retried until it lands
// (an absolute change is harmless to repeat).
func shiftTraffic(ctx workflow.Context, s *spec.Service, in activities.ShiftInput) (activities.ShiftResult, error) {
	var res activities.ShiftResult
	err := workflow.ExecuteActivity(options(ctx, s.Router.Kind.ShiftTimeout(), 0, 0), acts.Shift, in).Get(ctx, &res)
	return res, err
}

// rollbackNow puts 100 % on the slot `to` in one absolute change, as a local
// activity so it lands in milliseconds. It is the one code path of every
// immediate rollback: a manual one, an abort and a failed analysis.
func rollbackNow(ctx workflow.Context, to rollout.Slot) (*activities.ShiftResult, error) {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 100 * time.Millisecond, MaximumInterval: 2 * time.Second},
	})
	var res activities.ShiftResult
	if err := workflow.ExecuteLocalActivity(lctx, acts.Shift,
		activities.ShiftInput{Weights: rollout.Split(to, 100)}).Get(ctx, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// retireSlot stops a slot once the activity has checked it has no traffic;
// stopping waits for the spec's stop timeout. Every retirement is tried
// five times: a slot left running costs resources, never traffic.
func retireSlot(ctx workflow.Context, s *spec.Service, in activities.RetireInput) error {
	return workflow.ExecuteActivity(options(ctx, s.Run.StopTimeout.D()+time.Minute, liveness, 5), acts.Retire, in).Get(ctx, nil)
}

// notify sends each notice to its channel, all at once, each retried a
// little with backoff: best effort, so an error is the caller's to report,
// never to stop on. The answers come back in the order asked.
func notify(ctx workflow.Context, notices []activities.NotifyInput) (refs []string, errs []error) {
	nctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
			MaximumAttempts: 3, NonRetryableErrorTypes: []string{activities.ErrBadInput}},
	})
	fs := make([]workflow.Future, len(notices))
	for i, n := range notices {
		fs[i] = workflow.ExecuteActivity(nctx, acts.Notify, n)
	}
	refs, errs = make([]string, len(notices)), make([]error, len(notices))
	for i, f := range fs {
		errs[i] = f.Get(ctx, &refs[i])
	}
	return refs, errs
}
