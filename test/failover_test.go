package test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"

	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/workflows"
)

// The promise of the production path, proved on the real Temporal server
// on PostgreSQL: no rollout is lost when a worker, the server or its
// database goes down mid-rollout, and the live slot serves throughout.

var fiveSteps = []rollout.Weights{{Blue: 90, Green: 10}, {Blue: 75, Green: 25}, {Blue: 50, Green: 50}, {Blue: 25, Green: 75}, {Green: 100}}

// requireEachStepOnce checks the history scheduled exactly one Shift per step.
func requireEachStepOnce(t *testing.T, h *historypb.History) {
	t.Helper()
	requireStepsScheduledOnce(t, h)
	for _, ev := range h.Events {
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.Attempt > 1 {
			if s := h.Events[a.ScheduledEventId-1].GetActivityTaskScheduledEventAttributes(); s != nil && s.ActivityType.GetName() == "Shift" {
				t.Fatalf("a Shift ran twice (attempt %d)", a.Attempt)
			}
		}
	}
}

// requireStepsScheduledOnce: the history schedules one Shift per step of
// fiveSteps, in order (a retried attempt is the same scheduled activity).
func requireStepsScheduledOnce(t *testing.T, h *historypb.History) {
	t.Helper()
	shifts := shiftsIn(t, h)
	if len(shifts) != len(fiveSteps) {
		t.Fatalf("history has %d Shift activities, want one per step: %v", len(shifts), shifts)
	}
	for i := range fiveSteps {
		if shifts[i] != fiveSteps[i] {
			t.Fatalf("step %d applied %s, want %s", i+1, shifts[i], fiveSteps[i])
		}
	}
}

// stepGaps returns the time between successive steps, from the rollout's
// timeline (its first entry is the weights the rollout found).
func stepGaps(st *workflows.Status) []time.Duration {
	var at []time.Time
	for _, c := range st.Timeline[1:] {
		at = append(at, c.At)
	}
	var gaps []time.Duration
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, at[i].Sub(at[i-1]))
	}
	return gaps
}

func TestTwoWorkersOnPostgresTheOtherFinishesWhenOneIsKilledMidBake(t *testing.T) {
	pg := startPGTemporal(t)
	e := newEnv(t, opts{address: pg.hostPort, bake: 3 * time.Second, noWorker: true})
	w1, w2 := startWorker(t, e), startWorker(t, e)
	e.given("v1")
	gen := load.Start(e.url, 50, 3*time.Minute)
	run := e.start("v2")
	e.waitFor("the bake of step 2", func(st *starterStatus) bool { return st.Step == 1 && !st.BakeEndsAt.IsZero() })
	// the worker that ran the latest workflow task holds the run in its cache
	var holder string
	for _, ev := range history(t, e, run).Events {
		if a := ev.GetWorkflowTaskStartedEventAttributes(); a != nil {
			holder = a.Identity
		}
	}
	pid, _ := strconv.Atoi(strings.SplitN(holder, "@", 2)[0])
	victim, other := w1, w2
	if w2.Process.Pid == pid {
		victim, other = w2, w1
	} else if w1.Process.Pid != pid {
		t.Fatalf("the last workflow task ran on %q, neither worker (pids %d, %d)", holder, w1.Process.Pid, w2.Process.Pid)
	}
	if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = victim.Wait()
	t.Logf("SIGKILLed worker pid %d, which ran the rollout; worker pid %d carries on", victim.Process.Pid, other.Process.Pid)
	e.promotedUnderLoad(run, gen, 300)
	h := history(t, e, run)
	requireEachStepOnce(t, h)
	var after []string
	for _, ev := range h.Events {
		if a := ev.GetWorkflowTaskStartedEventAttributes(); a != nil && !strings.HasPrefix(a.Identity, fmt.Sprint(victim.Process.Pid)+"@") {
			after = append(after, a.Identity)
		}
	}
	if len(after) == 0 {
		t.Fatal("no workflow task ran on the surviving worker")
	}
	t.Logf("promoted on the surviving worker (%s); one Shift per step", after[len(after)-1])
}

func TestServerRestartMidBakeAndMidGradualRollbackKeepsTheTimers(t *testing.T) {
	pg := startPGTemporal(t)
	bake := 3 * time.Second
	e := newEnv(t, opts{address: pg.hostPort, bake: bake, gradual: 8 * time.Second, scaleDown: 10 * time.Minute, noWorker: true})
	startWorker(t, e)
	e.given("v1")
	gen := load.Start(e.url, 50, 5*time.Minute)
	defer gen.Stop()
	run := e.start("v2")
	e.waitFor("the bake of step 2", func(st *starterStatus) bool { return st.Step == 1 && !st.BakeEndsAt.IsZero() })
	pg.RestartServer(2 * time.Second)
	e.waitFor("v2 promoted, v1 kept warm", func(st *starterStatus) bool { return st.Phase == rollout.PhaseScalingDown })
	st, err := e.starter.Status(context.Background(), e.svc.Name, e.svc.Environment)
	if err != nil {
		t.Fatal(err)
	}
	gaps := stepGaps(st)
	if len(gaps) != 4 {
		t.Fatalf("want 5 steps, got gaps %v", gaps)
	}
	for i, g := range gaps {
		if g < bake {
			t.Fatalf("step %d baked %s, less than its %s: a timer was lost or fired early (gaps %v)", i+1, g, bake, gaps)
		}
	}
	h := history(t, e, run)
	requireEachStepOnce(t, h)
	t.Logf("rollout across a server restart: step gaps %v (bake %s)", gaps, bake)

	rb, err := e.starter.Rollback(context.Background(), e.svc, workflows.Gradual, "server restart test", "test")
	if err != nil {
		t.Fatal(err)
	}
	e.waitRollbackStep(1)
	pg.RestartServer(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := e.starter.WaitRollback(ctx, rb)
	res := gen.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Timeline) != 4 || rep.Duration() < 8*time.Second {
		t.Fatalf("gradual rollback: want 4 steps over at least 8s, got %d in %s: %v", len(rep.Timeline), rep.Duration(), rep.Timeline)
	}
	for i := 1; i < len(rep.Timeline); i++ {
		if g := rep.Timeline[i].At.Sub(rep.Timeline[i-1].At); g < 2*time.Second {
			t.Fatalf("gradual step %d came %s after the one before, less than its 2s", i+1, g)
		}
	}
	if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
		t.Fatalf("after the rollback the router says %s", w)
	}
	requireNoFailures(t, res, 500)
	t.Logf("gradual rollback across a server restart: %d steps in %s", len(rep.Timeline), rep.Duration().Round(time.Millisecond))
}

// waitRollbackStep waits until the running rollback has made n weight changes.
func (e *env) waitRollbackStep(n int) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		rep, err := e.starter.RollbackStatus(context.Background(), e.svc.Name, e.svc.Environment)
		if err == nil && len(rep.Timeline) >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("the rollback made no %d steps in a minute", n)
}

func TestPostgresRestartMidRolloutPausesAndResumes(t *testing.T) {
	pg := startPGTemporal(t)
	e := newEnv(t, opts{address: pg.hostPort, bake: 3 * time.Second, noWorker: true})
	startWorker(t, e)
	e.given("v1")
	gen := load.Start(e.url, 50, 5*time.Minute)
	run := e.start("v2")
	e.waitFor("the bake of step 2", func(st *starterStatus) bool { return st.Step == 1 && !st.BakeEndsAt.IsZero() })
	pg.RestartPostgres(5 * time.Second)
	o := e.promotedUnderLoad(run, gen, 300)
	requireEachStepOnce(t, history(t, e, run))
	if w := e.weights(); w != (rollout.Weights{Green: 100}) {
		t.Fatalf("router says %s", w)
	}
	t.Logf("promoted after PostgreSQL was down 5s mid-bake: step gaps %v", stepGaps(o.Status))
}
