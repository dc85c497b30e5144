package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
)

// startWorker runs `switchyard worker`, this checkout's build, as its own
// process, as in production.
func startWorker(t testing.TB, e *env) *exec.Cmd {
	t.Helper()
	return startWorkerFrom(t, e, filepath.Join(bins, "switchyard"), "worker.log")
}

// startWorkerFrom runs `switchyard worker` from binary bin with extra flags,
// logging to a file named log.
func startWorkerFrom(t testing.TB, e *env, bin, log string, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"worker", "--address", e.address, "--task-queue", e.queue,
		"--state-dir", filepath.Join(t.TempDir(), "state")}, extra...)...)
	f, _ := os.Create(filepath.Join(t.TempDir(), log))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// killAndRestart SIGKILLs a worker process, leaves the service without one
// for 2s (its slots are their own processes and keep serving), and starts a
// new one, which it returns.
func killAndRestart(t *testing.T, e *env, w *exec.Cmd, when string) *exec.Cmd {
	t.Helper()
	if err := w.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = w.Wait()
	t.Log("worker SIGKILLed " + when)
	time.Sleep(2 * time.Second)
	return startWorker(t, e)
}

// history reads a run's events.
func history(t *testing.T, e *env, run client.WorkflowRun) *historypb.History {
	t.Helper()
	return historyOf(t, e.starter.C, run)
}

// historyOf reads a run's whole history.
func historyOf(t *testing.T, c client.Client, run client.WorkflowRun) *historypb.History {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	return h
}

// shiftsIn lists the weights of every Shift activity the workflow scheduled.
func shiftsIn(t *testing.T, h *historypb.History) []rollout.Weights {
	t.Helper()
	var out []rollout.Weights
	for _, ev := range h.Events {
		a := ev.GetActivityTaskScheduledEventAttributes()
		if a == nil || a.ActivityType.GetName() != "Shift" {
			continue
		}
		var in activities.ShiftInput
		if err := converter.GetDefaultDataConverter().FromPayloads(a.Input, &in); err != nil {
			t.Fatal(err)
		}
		out = append(out, in.Weights)
	}
	return out
}

// record saves a history for the replay tests when SWITCHYARD_RECORD names a directory.
func record(t *testing.T, h *historypb.History, name string) {
	dir := os.Getenv("SWITCHYARD_RECORD")
	if dir == "" {
		return
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWorkerKilledMidBakeResumesAndFinishesWithoutReplayingASteps(t *testing.T) {
	e := newEnv(t, opts{bake: 3 * time.Second, noWorker: true})
	w := startWorker(t, e)
	if o := e.deploy("v1"); o.Kind != "" {
		t.Fatalf("v1: %s", o.Reason)
	}
	gen := load.Start(e.url, 100, 3*time.Minute)
	run := e.start("v2")
	e.waitFor("the bake of step 2", func(st *starterStatus) bool { return st.Step == 1 && !st.BakeEndsAt.IsZero() })
	killAndRestart(t, e, w, "during the bake of step 2")
	e.promotedUnderLoad(run, gen, 500)
	if w := e.weights(); w != (rollout.Weights{Green: 100}) {
		t.Fatalf("router says %s, want green=100", w)
	}
	h := history(t, e, run)
	shifts := shiftsIn(t, h)
	want := []rollout.Weights{{Blue: 90, Green: 10}, {Blue: 75, Green: 25}, {Blue: 50, Green: 50}, {Blue: 25, Green: 75}, {Green: 100}}
	if len(shifts) != len(want) {
		t.Fatalf("history has %d Shift activities, want one per step (%d): %v", len(shifts), len(want), shifts)
	}
	for i := range want {
		if shifts[i] != want[i] {
			t.Fatalf("step %d applied %s, want %s (all: %v)", i+1, shifts[i], want[i], shifts)
		}
	}
	// no activity ran twice either (a retry after the crash would show as
	// attempt > 1), but the early stop's Watch: it was watching when the
	// worker died, and a new attempt picks the watch up on the new worker
	kinds := map[int64]string{}
	watches := 0
	for _, ev := range h.Events {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			kinds[ev.EventId] = a.ActivityType.GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.Attempt > 1 {
			if kinds[a.ScheduledEventId] != "Watch" {
				t.Fatalf("activity %s was retried after the crash: event %d attempt %d", kinds[a.ScheduledEventId], ev.EventId, a.Attempt)
			}
			watches++
		}
	}
	t.Logf("the early stop's watch was taken up again by the new worker %d time(s)", watches)
	record(t, h, "deployment_early_stop_watch_after_worker_crash.json")
}
