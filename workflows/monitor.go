package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/incident"
	"github.com/switchyard/switchyard/internal/spec"
)

// MonitorInput is what each Schedule tick runs with.
type MonitorInput struct {
	Spec spec.Service `json:"spec"`
}

// Monitor is one monitoring run: read the incidents the last run left, check
// the live environment, open, update or resolve incidents on every channel,
// and roll back when a critical check fails inside a rollback window.
// Channels are best effort: a channel that is down is retried, counted and
// reported, and never stops the checks or the rollback.
func Monitor(ctx workflow.Context, in MonitorInput) (*incident.State, error) {
	s := &in.Spec
	_ = workflow.UpsertTypedSearchAttributes(ctx, SAService.ValueSet(s.Name), SAEnvironment.ValueSet(s.Environment))
	var prev incident.State
	last, err := lastMonitorState(ctx, lastMonitorQuery(s.Name, s.Environment))
	if err != nil {
		return nil, err
	}
	if last != nil {
		prev = *last
	}
	checks, err := monitorChecks(ctx, activities.MonitorChecksInput{Previous: prev.Counters})
	if err != nil {
		return nil, err
	}
	now := workflow.Now(ctx)
	open, notices := incident.Reconcile(prev.Incidents, checks.Results, s.Name, s.Environment, now)
	st := &incident.State{Service: s.Name, Environment: s.Environment, RanAt: now, Results: checks.Results,
		Incidents: open, Counters: checks.Counters, Notices: notices}

	// every notice to every channel at once
	type pending struct {
		notice  int
		channel string
	}
	var sent []pending
	var ns []activities.NotifyInput
	for i, n := range notices {
		for c, al := range s.Alerts {
			ns = append(ns, activities.NotifyInput{Channel: c, Action: n.Action, In: n.Incident})
			sent = append(sent, pending{i, incident.ChannelName(al.Kind, c)})
		}
	}
	refs, errs := notify(ctx, ns)
	for j, p := range sent {
		ref := refs[j]
		n := notices[p.notice]
		if err := errs[j]; err != nil {
			st.Delivery = append(st.Delivery, fmt.Sprintf("%s %s to %s failed: %s", n.Action, n.Incident.Key, p.channel, rootMessage(err)))
			continue
		}
		st.Delivery = append(st.Delivery, fmt.Sprintf("%s %s sent to %s", n.Action, n.Incident.Key, p.channel))
		if n.Action == incident.Open && ref != "" {
			for i := range st.Incidents {
				if st.Incidents[i].Key == n.Incident.Key {
					st.Incidents[i].Refs = append(st.Incidents[i].Refs, incident.Ref{Channel: p.channel, Ref: ref})
				}
			}
		}
	}

	// the open incidents, findable without reading each run's result (the dashboard's overview)
	if workflow.GetVersion(ctx, "incidents-search-attribute", workflow.DefaultVersion, 1) == 1 {
		_ = workflow.UpsertTypedSearchAttributes(ctx, SAIncidents.ValueSet(int64(len(st.Incidents))))
	}
	if s.Monitor.RollbackOnCritical {
		for _, r := range checks.Results {
			if r.Critical && !r.Passed {
				st.Rollback = abortForMonitor(ctx, s.Name, s.Environment, fmt.Sprintf("critical check %s failing: %s", r.Name, r.Detail))
				break
			}
		}
	}
	return st, nil
}

// lastMonitorQuery finds the service's completed Monitor runs, whose
// results hold the incidents still open.
func lastMonitorQuery(service, env string) string {
	return fmt.Sprintf("WorkflowType = '%s' AND %s = %q AND %s = %q AND ExecutionStatus = 'Completed'",
		MonitorWorkflow, SAService.GetName(), service, SAEnvironment.GetName(), env)
}

// abortForMonitor takes the way back the post-promotion guard takes (guard.go):
// while the rollout is still in its rollback window (the old slot warm) an
// abort signal makes it go back at once with its own immediate rollback;
// after it, a Breach signal makes the service's Guard redeploy the last
// known-good version on a fast track. With neither running there is
// nothing to go back to, which it says. A signal the receiver refuses is
// recorded there, with the reason.
func abortForMonitor(ctx workflow.Context, service, env, reason string) string {
	id := DeploymentID(service, env)
	req := AbortRequest{Reason: reason, By: "monitor"}
	if workflow.SignalExternalWorkflow(ctx, id, "", Abort, req).Get(ctx, nil) == nil {
		return "abort signalled to " + id
	}
	if workflow.GetVersion(ctx, "monitor-breach-to-guard", workflow.DefaultVersion, 1) == 1 {
		gid := GuardID(service, env)
		if workflow.SignalExternalWorkflow(ctx, gid, "", Breach, req).Get(ctx, nil) == nil {
			return "breach signalled to " + gid + ": it redeploys the last known-good version"
		}
		return "no rollout in its rollback window and no guard running: nothing to roll back to"
	}
	return "no rollout in its rollback window: nothing to roll back to"
}
