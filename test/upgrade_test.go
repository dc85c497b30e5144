package test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/internal/load"
)

// startWorkerBuild runs `switchyard worker` from binary bin as build id.
func startWorkerBuild(t *testing.T, e *env, bin, id string) *exec.Cmd {
	t.Helper()
	return startWorkerFrom(t, e, bin, "worker-"+id+".log", "--build-id", id)
}

// buildsThatRan lists the build ids that completed the run's workflow
// tasks, in order, without repeats; failed lists the workflow task failures.
func buildsThatRan(t *testing.T, e *env, run client.WorkflowRun) (builds []string, failed []string) {
	h := history(t, e, run)
	for _, ev := range h.Events {
		if a := ev.GetWorkflowTaskCompletedEventAttributes(); a != nil {
			id := a.GetDeploymentVersion().GetBuildId()
			if len(builds) == 0 || builds[len(builds)-1] != id {
				builds = append(builds, id)
			}
		}
		if a := ev.GetWorkflowTaskFailedEventAttributes(); a != nil {
			failed = append(failed, a.GetCause().String()+": "+a.GetFailure().GetMessage())
		}
	}
	return builds, failed
}

func pinnedTo(t *testing.T, e *env, run client.WorkflowRun) string {
	t.Helper()
	d, err := e.starter.C.WorkflowService().DescribeWorkflowExecution(context.Background(), &workflowservice.DescribeWorkflowExecutionRequest{
		Namespace: "default", Execution: &commonpb.WorkflowExecution{WorkflowId: run.GetID(), RunId: run.GetRunID()}})
	if err != nil {
		t.Fatal(err)
	}
	vi := d.GetWorkflowExecutionInfo().GetVersioningInfo()
	if vi.GetBehavior() != enumspb.VERSIONING_BEHAVIOR_PINNED {
		t.Fatalf("rollout %s has versioning behaviour %s, want pinned", run.GetID(), vi.GetBehavior())
	}
	return vi.GetDeploymentVersion().GetBuildId()
}

// TestWorkerUpgradeMidRolloutFinishesOnTheBuildThatStartedIt: a rollout
// starts on build A; build B, whose Deployment workflow would fail to
// replay A's history, starts and is made current with `switchyard worker
// current`; the running rollout finishes on A with no failed request and no
// failed workflow task; the next rollout runs on B; A is stopped and B
// alone carries on.
func TestWorkerUpgradeMidRolloutFinishesOnTheBuildThatStartedIt(t *testing.T) {
	e := newEnv(t, opts{bake: 2 * time.Second, noWorker: true})
	binA := filepath.Join(bins, "switchyard")
	binB := filepath.Join(t.TempDir(), "switchyard-b")
	if out, err := exec.Command("go", "build", "-ldflags", "-X github.com/switchyard/switchyard/workflows.upgradeProbe=on",
		"-o", binB, "../cmd/switchyard").CombinedOutput(); err != nil {
		t.Fatalf("build B: %v\n%s", err, out)
	}
	a := startWorkerBuild(t, e, binA, "build-a")
	e.given("v1")
	gen := load.Start(e.url, 100, 5*time.Minute)
	defer gen.Stop()
	run := e.start("v2")
	e.waitFor("v2's first bake", func(st *starterStatus) bool { return st.Step == 0 && !st.BakeEndsAt.IsZero() })

	startWorkerBuild(t, e, binB, "build-b")
	var out []byte
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		var err error
		out, err = exec.Command(binA, "worker", "current", "build-b", "--address", e.address, "--task-queue", e.queue).CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("switchyard worker current build-b: %v\n%s", err, out)
		}
	}
	if !strings.Contains(string(out), "build build-b is current (was build-a)") {
		t.Fatalf("switchyard worker current build-b printed:\n%s", out)
	}
	t.Logf("mid-rollout: %s", strings.TrimSpace(string(out)))

	o := e.promotedUnderLoad(run, gen, 500)
	builds, failed := buildsThatRan(t, e, run)
	if len(failed) > 0 || strings.Join(builds, ",") != "build-a" {
		t.Fatalf("v2 ran on builds %v with workflow task failures %v: want build-a alone, none failed", builds, failed)
	}
	if b := pinnedTo(t, e, run); b != "build-a" {
		t.Fatalf("v2 is pinned to %q, want build-a", b)
	}
	t.Logf("v2 (started on build-a) promoted on build-a after build-b became current; step gaps %v", stepGaps(o.Status))

	run3 := e.start("v4")
	if o := e.promotedUnderLoad(run3, load.Start(e.url, 100, 3*time.Minute), 300); o.Kind != "" {
		t.Fatalf("v4: %s", o.Reason)
	}
	builds, failed = buildsThatRan(t, e, run3)
	if len(failed) > 0 || strings.Join(builds, ",") != "build-b" || pinnedTo(t, e, run3) != "build-b" {
		t.Fatalf("v4 ran on builds %v with failures %v: want build-b alone", builds, failed)
	}
	probe := false
	for _, ev := range history(t, e, run3).Events {
		if a := ev.GetTimerStartedEventAttributes(); a != nil && a.GetStartToFireTimeout().AsDuration() == time.Millisecond {
			probe = true
		}
	}
	if !probe {
		t.Fatal("v4's history has no 1 ms probe timer: it did not run build-b's workflow code")
	}

	_ = a.Process.Signal(syscall.SIGTERM)
	_ = a.Wait()
	e.given("v5")
	list, _ := exec.Command(binA, "worker", "current", "--address", e.address, "--task-queue", e.queue).CombinedOutput()
	t.Logf("v4 and v5 ran on build-b; build-a stopped. switchyard worker current:\n%s", list)
}
