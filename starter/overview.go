package starter

import (
	"context"
	"fmt"
	"sort"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/switchyard/switchyard/workflows"
)

// ServiceState is a service in an environment as its latest rollout left
// it (or leaves it now, while it runs), read from Temporal's visibility.
type ServiceState struct {
	Service, Environment string
	// Version, Phase and Traffic (the version's share) are the latest rollout's.
	Version, Phase string
	Traffic        int64
	Running        bool
	Start, Close   time.Time
	WorkflowID     string
	RunID          string
}

// overviewRuns bounds the rollouts read for an overview: the latest of each
// service is among the newest ones.
const overviewRuns = 5000

// Overview lists every service and environment that has a rollout, by
// service then environment, each with its latest rollout.
func (s *Starter) Overview(ctx context.Context) ([]ServiceState, error) {
	latest := map[[2]string]ServiceState{}
	var token []byte
	for n := 0; n < overviewRuns; {
		resp, err := s.C.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowType = %q", workflows.DeploymentWorkflow), PageSize: 1000, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("overview: %w", err)
		}
		for _, e := range resp.Executions {
			n++
			st := ServiceState{
				Service: keyword(e.SearchAttributes, workflows.SAService.GetName()), Environment: keyword(e.SearchAttributes, workflows.SAEnvironment.GetName()),
				Version: keyword(e.SearchAttributes, workflows.SAVersion.GetName()), Phase: keyword(e.SearchAttributes, workflows.SAPhase.GetName()),
				Running: e.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, WorkflowID: e.Execution.WorkflowId, RunID: e.Execution.RunId,
			}
			if st.Service == "" {
				continue
			}
			if p, ok := e.SearchAttributes.GetIndexedFields()[workflows.SATraffic.GetName()]; ok {
				_ = converter.GetDefaultDataConverter().FromPayload(p, &st.Traffic)
			}
			if e.StartTime != nil {
				st.Start = e.StartTime.AsTime()
			}
			if e.CloseTime != nil {
				st.Close = e.CloseTime.AsTime()
			}
			k := [2]string{st.Service, st.Environment}
			if cur, ok := latest[k]; !ok || st.Start.After(cur.Start) {
				latest[k] = st
			}
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	out := make([]ServiceState, 0, len(latest))
	for _, st := range latest {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Environment < out[j].Environment
	})
	return out, nil
}
