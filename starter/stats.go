package starter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/switchyard/switchyard/internal/check"
	"github.com/switchyard/switchyard/workflows"
)

// Stats are the strategy's success metrics for one service in one
// environment, computed from the runs Temporal keeps.
type Stats struct {
	Service, Environment string
	Rollouts             int // ended deployments
	Promoted             int
	RolledBack           int
	Failed               int
	P50, P95             time.Duration // duration of promoted rollouts
	Rollbacks            int           // rollbacks of any kind: a rollout's own and Rollback workflows
	// MeanTimeToStable is the mean time from the decision to roll back (an
	// abort, a failed analysis, a rollback request) to 100 % on the stable slot.
	MeanTimeToStable time.Duration
	DORA
}

// DORA are the four key figures of the DORA research, from the same runs.
type DORA struct {
	// DeploysPerDay is promoted rollouts per day over the period.
	DeploysPerDay float64
	// ChangeFailures are changes that failed in production: rollouts rolled
	// back, and promoted ones undone later (a Rollback, a guard's restore).
	ChangeFailures int
	// ChangeFailureRate is ChangeFailures over the changes that reached traffic.
	ChangeFailureRate float64
	// TimeToRestore is the mean time from a failure's decision (an abort, a
	// failed analysis or guard, a rollback request) to the previous version
	// serving all traffic; 0 with no failure.
	TimeToRestore time.Duration
	// LeadTime is the median time from commit to promoted, over the
	// rollouts that carry a commit time (deploy --commit-time); LeadTimes counts them.
	LeadTime  time.Duration
	LeadTimes int
}

// SuccessRate is promoted over ended rollouts.
func (s Stats) SuccessRate() float64 {
	if s.Rollouts == 0 {
		return 0
	}
	return float64(s.Promoted) / float64(s.Rollouts)
}

// Stats lists every service's figures over runs started since `since` ago.
func (s *Starter) Stats(ctx context.Context, since time.Duration) ([]Stats, error) {
	from := time.Now().Add(-since).UTC().Format(time.RFC3339)
	q := fmt.Sprintf("(WorkflowType = '%s' OR WorkflowType = '%s') AND StartTime > '%s' AND ExecutionStatus != 'Running'",
		workflows.DeploymentWorkflow, workflows.RollbackWorkflow, from)
	by := map[string]*Stats{}
	durations := map[string][]time.Duration{}
	toStable := map[string][]time.Duration{}
	restores := map[string][]time.Duration{} // guard restores: a fast-track rollout's whole run
	leads := map[string][]time.Duration{}
	var token []byte
	for {
		resp, err := s.C.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 500, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("history --stats: %w", err)
		}
		for _, e := range resp.Executions {
			svc, env := attr[string](e.SearchAttributes, workflows.SAService.GetName()), attr[string](e.SearchAttributes, workflows.SAEnvironment.GetName())
			k := svc + "/" + env
			st := by[k]
			if st == nil {
				st = &Stats{Service: svc, Environment: env}
				by[k] = st
			}
			run := s.C.GetWorkflow(ctx, e.Execution.WorkflowId, e.Execution.RunId)
			if e.Type.Name == workflows.RollbackWorkflow {
				var rep workflows.RollbackReport
				if run.Get(ctx, &rep) == nil && !rep.EndedAt.IsZero() {
					st.Rollbacks++
					st.ChangeFailures++
					toStable[k] = append(toStable[k], rep.Duration())
				}
				continue
			}
			st.Rollouts++
			switch e.Status {
			case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
				st.Promoted++
				took := e.CloseTime.AsTime().Sub(e.StartTime.AsTime())
				durations[k] = append(durations[k], took)
				var ds workflows.Status
				if run.Get(ctx, &ds) == nil {
					if !ds.CommitTime.IsZero() {
						leads[k] = append(leads[k], e.CloseTime.AsTime().Sub(ds.CommitTime))
					}
					if strings.HasPrefix(ds.RequestedBy, "guard (") {
						st.ChangeFailures++ // the promoted version it undid failed
						restores[k] = append(restores[k], took)
					}
				}
			default:
				var ds workflows.Status
				err := run.Get(ctx, &ds)
				var app *temporal.ApplicationError
				if workflows.EndingOf(err) == workflows.ErrRolledBack && errors.As(err, &app) {
					st.RolledBack++
					st.ChangeFailures++
					if app.HasDetails() && app.Details(&ds) == nil && ds.Rollback != nil {
						st.Rollbacks++
						toStable[k] = append(toStable[k], ds.Rollback.Duration())
					}
				} else {
					st.Failed++
				}
			}
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			break
		}
	}
	var out []Stats
	for k, st := range by {
		d := durations[k]
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		st.P50, st.P95 = check.Quantile(d, 0.5), check.Quantile(d, 0.95)
		st.MeanTimeToStable = mean(toStable[k])
		st.TimeToRestore = mean(append(slices.Clone(toStable[k]), restores[k]...))
		st.DeploysPerDay = float64(st.Promoted) / since.Hours() * 24
		if changes := st.Promoted + st.RolledBack; changes > 0 {
			st.ChangeFailureRate = float64(st.ChangeFailures) / float64(changes)
		}
		if l := leads[k]; len(l) > 0 {
			slices.Sort(l)
			st.LeadTime, st.LeadTimes = check.Quantile(l, 0.5), len(l)
		}
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Service+"/"+out[i].Environment < out[j].Service+"/"+out[j].Environment
	})
	return out, nil
}

// attr reads a run's search attribute (the zero value when it has none).
func attr[T any](sa *commonpb.SearchAttributes, name string) T {
	var v T
	if p, ok := sa.GetIndexedFields()[name]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &v)
	}
	return v
}

func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}
