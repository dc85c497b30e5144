package starter

import (
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/workflows"
)

func TestMonitorScheduleRunsTheMonitorEveryIntervalSkippingOverlaps(t *testing.T) {
	svc := &spec.Service{Name: "api", Environment: "production"}
	o := MonitorSchedule(svc, 5*time.Minute, "switchyard")
	if o.ID != "monitor/api/production" || len(o.Spec.Intervals) != 1 || o.Spec.Intervals[0].Every != 5*time.Minute {
		t.Fatalf("schedule: %+v", o)
	}
	if o.Overlap != enumspb.SCHEDULE_OVERLAP_POLICY_SKIP {
		t.Fatalf("overlap policy %v, want skip", o.Overlap)
	}
	a, ok := o.Action.(*client.ScheduleWorkflowAction)
	if !ok || a.Workflow != "Monitor" || a.TaskQueue != "switchyard" || a.ID != "monitor/api/production" {
		t.Fatalf("action: %+v", o.Action)
	}
	if in, ok := a.Args[0].(workflows.MonitorInput); !ok || in.Spec.Name != "api" {
		t.Fatalf("args: %+v", a.Args)
	}
	if a.TypedSearchAttributes.Size() != 2 {
		t.Fatalf("runs must carry service and environment search attributes: %v", a.TypedSearchAttributes)
	}
}
