package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays histories recorded on a real server
// (see test/: SWITCHYARD_RECORD=workflows/testdata go test ./test/). A
// change that makes today's code take another path than a recorded run
// fails here: guard it with workflow.GetVersion.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("want the recorded histories in testdata, found %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(Deployment, workflow.RegisterOptions{Name: DeploymentWorkflow})
			r.RegisterWorkflowWithOptions(Rollback, workflow.RegisterOptions{Name: RollbackWorkflow})
			r.RegisterWorkflowWithOptions(Monitor, workflow.RegisterOptions{Name: MonitorWorkflow})
			r.RegisterWorkflowWithOptions(Retire, workflow.RegisterOptions{Name: RetireWorkflow})
			r.RegisterWorkflowWithOptions(ServiceLock, workflow.RegisterOptions{Name: ServiceLockWorkflow})
			r.RegisterWorkflowWithOptions(Release, workflow.RegisterOptions{Name: ReleaseWorkflow})
			r.RegisterWorkflowWithOptions(Freeze, workflow.RegisterOptions{Name: FreezeWorkflow})
			r.RegisterWorkflowWithOptions(Guard, workflow.RegisterOptions{Name: GuardWorkflow})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatal(err)
			}
		})
	}
}
