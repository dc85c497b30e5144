package test

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
)

func TestWorkerKilledMidBakeResumesAndFinishesWithoutReplayingASteps(t *testing.T) {
	e := newEnv(t, opts{bake: 3 * time.Second, noWorker: true})
	w := startWorker(t, e)
	e.given("v1")
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
