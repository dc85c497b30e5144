package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/workflows"
)

// promotedWithWarmSlot deploys v1 then v2 (promoted) and leaves v1 warm in
// blue for the scale-down delay: the state an on-call engineer rolls back from.
func promotedWithWarmSlot(t *testing.T, o opts) *env {
	t.Helper()
	if o.scaleDown == 0 {
		o.scaleDown = 10 * time.Minute
	}
	e := newEnv(t, o)
	e.given("v1")
	e.start("v2")
	e.waitFor("v2 promoted, v1 kept warm", func(st *starterStatus) bool {
		return st.Version == "v2" && st.Phase == rollout.PhaseScalingDown
	})
	return e
}

func TestEachRollbackStrategyUnderLoadFailsNoRequest(t *testing.T) {
	for _, st := range workflows.Strategies {
		strategy := string(st)
		t.Run(strategy, func(t *testing.T) {
			e := promotedWithWarmSlot(t, opts{})
			gen := load.Start(e.url, 100, 2*time.Minute)
			time.Sleep(500 * time.Millisecond)
			out, code := cli(t, e, "rollback", e.svc.Name, "-f", e.file, "--env", "test", "--strategy", strategy, "--reason", "test "+strategy)
			time.Sleep(500 * time.Millisecond)
			res := gen.Stop()
			expect(t, out, code, 0, "rollback report", "strategy   "+strategy, "v2 (slot green) → v1 (slot blue)", "rolled-back")
			requireNoFailures(t, res, 100)
			if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
				t.Fatalf("router says %s after the rollback", w)
			}
			if res.ByVersion["v1"] == 0 || res.ByVersion["v2"] == 0 {
				t.Fatalf("both versions should have served: %v", res.ByVersion)
			}
			// the rollout it took over from ended rolled back, not promoted
			o, err := e.starter.Wait(context.Background(), e.starter.Run(e.svc.Name, e.svc.Environment))
			if err != nil || o.Kind != workflows.ErrRolledBack || !strings.Contains(o.Reason, "taken over by a "+strategy+" rollback") {
				t.Fatalf("the Deployment should end rolled back by the takeover: %v %+v", err, o)
			}
			green := e.instance(rollout.Green)
			if !green.Running {
				t.Fatalf("the bad slot should be left running (strategy %s): %+v", strategy, green)
			}
			if st == workflows.Gradual {
				rep, err := e.starter.RollbackStatus(context.Background(), e.svc.Name, e.svc.Environment)
				if err != nil {
					t.Fatal(err)
				}
				if len(rep.Timeline) != 4 || rep.Duration() < 4*time.Second {
					t.Fatalf("gradual: want 4 steps over 4s, got %d in %s: %v", len(rep.Timeline), rep.Duration(), rep.Timeline)
				}
			}
			if st == workflows.Swap {
				out, code := cli(t, e, "retire", e.svc.Name, "-f", e.file, "--env", "test", "--slot", "blue")
				expect(t, out, code, 2, "slot blue still has 100% of traffic", "refusing to stop it")
				out, code = cli(t, e, "retire", e.svc.Name, "-f", e.file, "--env", "test", "--slot", "green")
				expect(t, out, code, 0, "retired slot green")
				if e.instance(rollout.Green).Running {
					t.Fatal("retire did not stop the bad slot")
				}
			}
		})
	}
}

func TestRollbackDuringARolloutTakesOverAsTheOnlyWriter(t *testing.T) {
	e := newEnv(t, opts{bake: time.Minute})
	e.given("v1")
	gen := load.Start(e.url, 100, 2*time.Minute)
	run := e.start("v2")
	e.waitFor("step 1", func(st *starterStatus) bool { return st.Step == 0 && !st.BakeEndsAt.IsZero() })
	out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v4")
	expect(t, out, code, 5, "a rollout is already running")
	rb, err := e.starter.Rollback(context.Background(), e.svc, workflows.Gradual, "test takeover", "test")
	if err != nil {
		t.Fatal(err)
	}
	out, code = cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v5")
	expect(t, out, code, 5, "rollback to v1 is running")
	out, code = cli(t, e, "rollback", e.svc.Name, "-f", e.file, "--env", "test", "--strategy", "swap")
	expect(t, out, code, 5, "rollback is already running")
	rep, err := e.starter.WaitRollback(context.Background(), rb)
	if err != nil {
		t.Fatal(err)
	}
	res := gen.Stop()
	requireNoFailures(t, res, 200)
	o, err := e.starter.Wait(context.Background(), run)
	if err != nil || o.Kind != workflows.ErrRolledBack {
		t.Fatalf("deployment: %v %+v", err, o)
	}
	// from 10 % there is only the last gradual step (0 %) to take
	if len(rep.Timeline) != 1 || rep.Timeline[0].Weights != (rollout.Weights{Blue: 100}) {
		t.Fatalf("timeline %v", rep.Timeline)
	}
	// the deployment wrote nothing after it handed over: its last Shift is the 10 % step
	shifts := shiftsIn(t, history(t, e, run))
	if len(shifts) != 1 || shifts[0] != rollout.Split(rollout.Green, 10) {
		t.Fatalf("the deployment's shifts: %v", shifts)
	}
}

func TestWorkerKilledMidGradualRollbackResumes(t *testing.T) {
	e := newEnv(t, opts{noWorker: true, scaleDown: 10 * time.Minute, gradual: 8 * time.Second})
	w := startWorker(t, e)
	e.given("v1")
	e.start("v2")
	e.waitFor("v2 promoted", func(st *starterStatus) bool { return st.Phase == rollout.PhaseScalingDown })
	gen := load.Start(e.url, 100, 2*time.Minute)
	run, err := e.starter.Rollback(context.Background(), e.svc, workflows.Gradual, "test crash", "test")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		rep, err := e.starter.RollbackStatus(context.Background(), e.svc.Name, e.svc.Environment)
		if err == nil && len(rep.Timeline) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first gradual step never came")
		}
	}
	killAndRestart(t, e, w, "after the first gradual step")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := e.starter.WaitRollback(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	res := gen.Stop()
	requireNoFailures(t, res, 300)
	if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
		t.Fatalf("router says %s", w)
	}
	t.Logf("gradual rollback over 8s took %s with a worker crash in it", rep.Duration())
	// durable timers: the rollback keeps its schedule across the crash; only
	// a timer that fell due while no worker ran can land late
	if d := rep.Duration(); d < 8*time.Second || d > 20*time.Second {
		t.Fatalf("gradual rollback took %s, want its 8s (plus at most the restart)", d)
	}
	h := history(t, e, run)
	g := func(p int) rollout.Weights { return rollout.Split(rollout.Green, p) }
	want := []rollout.Weights{g(75), g(50), g(25), g(0)}
	got := shiftsIn(t, h)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("gradual steps in the history: %v, want each once: %v", got, want)
	}
	for _, ev := range h.Events {
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.Attempt > 1 {
			t.Fatalf("an activity ran twice: event %d attempt %d", ev.EventId, a.Attempt)
		}
	}
	record(t, h, "rollback_gradual_after_worker_crash.json")
}

func TestRollbackBadInput(t *testing.T) {
	e := newEnv(t, opts{scaleDown: 0})
	out, code := cli(t, e, "rollback", e.svc.Name, "-f", e.file, "--env", "test")
	expect(t, out, code, 2, "was never deployed: nothing to go back to")
	out, code = cli(t, e, "rollback", e.svc.Name, "-f", e.file, "--env", "test", "--strategy", "sideways")
	expect(t, out, code, 2, `--strategy: unknown strategy "sideways" (use immediate, gradual, swap)`)
	e.given("v1")
	out, code = cli(t, e, "rollback", e.svc.Name, "-f", e.file, "--env", "test")
	expect(t, out, code, 2, "no previous slot: the last rollout of "+e.svc.Name+" (v1) was its first deployment")
	e.given("v2")
	// scaleDownDelay 0: blue was retired at promotion
	out, code = cli(t, e, "rollback", e.svc.Name, "-f", e.file, "--env", "test")
	expect(t, out, code, 4, "the previous slot blue no longer runs v1",
		fmt.Sprintf("switchyard deploy %s --env test --version v1", e.svc.Name))
	if w := e.weights(); w != (rollout.Weights{Green: 100}) {
		t.Fatalf("a refused rollback changed the router: %s", w)
	}
}
