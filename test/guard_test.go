package test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/workflows"
)

// guardYAML guards a promoted version with Prometheus's error rate over the
// last 5 s (five scrapes), judged every second, for a while.
func guardYAML(dur string) string {
	// by version too: the slot's previous process may have erred in the window
	q := strings.ReplaceAll(strings.ReplaceAll(errorRateQuery, "{{interval}}", "5s"), `slot="{{slot}}"`, `slot="{{slot}}",version="{{version}}"`)
	return fmt.Sprintf(`{for: %s, interval: 1s, metrics: [{name: guard-error-rate, query: '%s', max: 0.05}]}`, dur, q)
}

// guardEnv: HAProxy, a real Prometheus scraping the slots every second (the
// guard's metric), quick bakes judged on HAProxy's counters.
func guardEnv(t testing.TB, scaleDown time.Duration, dur string) (*env, *prometheus) {
	prom := startPrometheus(t)
	e := newEnv(t, opts{steps: []int{50, 100}, bake: time.Second, scaleDown: scaleDown, guard: guardYAML(dur),
		analysis: fmt.Sprintf(`{interval: 1s, maxErrorRate: 0.05, prometheus: {address: 'http://%s', targetsFile: %q, step: 1s, retries: 1}}`, prom.addr, prom.targets)})
	return e, prom
}

// failAfterPromotion deploys v2 under load, waits `after` once it is
// promoted, then makes its slot fail half its requests (as a version gone
// bad an hour in would). It returns when the failures began.
func failAfterPromotion(t testing.TB, e *env, gen *load.Generator, after time.Duration) (client.WorkflowRun, time.Time) {
	t.Helper()
	run := e.start("v2")
	e.waitFor("v2 at 100%", func(st *starterStatus) bool { return st.Weights.Of(st.Target) == 100 })
	time.Sleep(after)
	addr := e.instance(rollout.Green).Addr
	bad := time.Now()
	resp, err := http.Get("http://" + addr + "/admin/fail?rate=0.5")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return run, bad
}

// requireOnlyTheBadVersionsOwnFailures: every failed request was one of v2's
// own 500s; the router and the way back failed none.
func requireOnlyTheBadVersionsOwnFailures(t *testing.T, res load.Result) {
	t.Helper()
	t.Logf("load: %s", res)
	for cause, n := range res.Causes {
		if cause != "500 from version v2 (its own answer)" {
			t.Fatalf("%d requests failed by %q: only v2's own answers may fail", n, cause)
		}
	}
	if res.Failed == 0 {
		t.Fatal("no request failed: the failure was not injected")
	}
}

// A version that starts failing 20 s after promotion, while the old slot is
// still warm, is judged by the guard on Prometheus's error rate and rolled
// back to the warm slot at once.
func TestTheGuardRollsAVersionThatGoesBadAfterPromotionBackToTheWarmSlot(t *testing.T) {
	e, _ := guardEnv(t, 2*time.Minute, "5m")
	e.given("v1")
	gen := load.Start(e.url, 100, 3*time.Minute)
	run, bad := failAfterPromotion(t, e, gen, 20*time.Second)
	o, err := e.starter.Wait(context.Background(), run)
	res := gen.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if o.Kind != workflows.ErrRolledBack || !strings.Contains(o.Reason, "guard: guard-error-rate: fail") {
		t.Fatalf("v2 gone bad after promotion: %q %s, want rolled back by the guard", o.Kind, o.Reason)
	}
	if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
		t.Fatalf("after the guard's rollback the router says %s", w)
	}
	requireOnlyTheBadVersionsOwnFailures(t, res)
	st := o.Status
	if st.Guard == nil || st.Guard.Judged < 10 || st.Rollback == nil {
		t.Fatalf("guard state %+v, rollback %+v: want ≥ 10 judgements (one a second for 20 s) and a rollback report", st.Guard, st.Rollback)
	}
	first := res.Failures[0].At
	t.Logf("guard: %d judgements; first bad request %s after the failure began, 100%% on v1 %s after the first bad request (%s from the decision)",
		st.Guard.Judged, first.Sub(bad).Round(time.Millisecond), st.Rollback.EndedAt.Sub(first).Round(time.Millisecond), st.Rollback.Duration().Round(time.Millisecond))
	if st.Rollback.EndedAt.Sub(first) > 15*time.Second {
		t.Fatalf("100%% back on v1 %s after the first bad request", st.Rollback.EndedAt.Sub(first))
	}
	record(t, history(t, e, run), "deployment_guard_rolled_back_in_warm_window.json")
}

// After the warm window (the old slot retired), a breach redeploys the last
// known-good version on a fast track: checks, then 100 % at once, failing no
// request beyond the bad version's own.
func TestAfterTheWarmWindowTheGuardRedeploysTheKnownGoodVersion(t *testing.T) {
	e, _ := guardEnv(t, 2*time.Second, "5m")
	e.given("v1")
	gen := load.Start(e.url, 100, 3*time.Minute)
	run, _ := failAfterPromotion(t, e, gen, 20*time.Second)
	o, err := e.starter.Wait(context.Background(), run)
	if err != nil || o.Kind != "" {
		t.Fatalf("v2 should have been promoted before it went bad: %v %+v", err, o)
	}
	if o.Status.Guard == nil || o.Status.Guard.Workflow != workflows.GuardID(e.svc.Name, "test") {
		t.Fatalf("v2's guard after its warm window: %+v", o.Status.Guard)
	}
	out, code := cli(t, e, "status", e.svc.Name, "--env", "test")
	expect(t, out, code, 0, "guard        judging until", "by workflow guard/"+e.svc.Name+"/test; a breach restores v1", "last: held: 1 metric(s) pass")
	guard := e.starter.C.GetWorkflow(context.Background(), workflows.GuardID(e.svc.Name, "test"), "")
	var gst workflows.GuardStatus
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := guard.Get(ctx, &gst); err != nil {
		t.Fatal(err)
	}
	res := gen.Stop()
	if gst.Guard.Phase != workflows.GuardRestored || !strings.Contains(gst.Guard.Reason, "guard-error-rate: fail") {
		t.Fatalf("the guard ended %s: %s\n%v", gst.Guard.Phase, gst.Guard.Reason, gst.Events)
	}
	if w := e.weights(); w.Of(w.Live()) != 100 || e.instance(w.Live()).Version != "v1" {
		t.Fatalf("after the fast-track redeploy the router says %s, the live slot runs %s", w, e.instance(w.Live()).Version)
	}
	requireOnlyTheBadVersionsOwnFailures(t, res)
	st, err := e.starter.Status(context.Background(), e.svc.Name, "test")
	if err != nil {
		t.Fatal(err)
	}
	byGuard := false
	for _, ev := range st.Events {
		byGuard = byGuard || strings.Contains(ev.Message, "v1 of "+e.svc.Name+" requested by guard (")
	}
	if st.Version != "v1" || len(st.Timeline) != 2 || !byGuard {
		t.Fatalf("the redeploy of v1: version %s, timeline %v, events %v; want one change to 100%% requested by the guard", st.Version, st.Timeline, st.Events)
	}
	record(t, historyOf(t, e.starter.C, guard), "guard_redeployed_known_good.json")
}

// An SLO burning its error budget fast (v1 fails 10 % of requests against a
// 99.9 % objective: a burn of ~100× on every window) holds the next rollout,
// saying why, with the burn rates in status; --emergency --reason goes
// through, recorded.
func TestAServiceBurningItsErrorBudgetFastIsHeldUnlessItIsAnEmergency(t *testing.T) {
	prom := startPrometheus(t)
	e := newEnv(t, opts{steps: []int{100}, bake: time.Second,
		analysis: fmt.Sprintf(`{interval: 1s, maxErrorRate: 0.5, prometheus: {address: 'http://%s', targetsFile: %q, step: 1s, retries: 1}}`, prom.addr, prom.targets),
		extra: `slos:
  - name: availability
    good: 'sum(rate(http_requests_total{service="{{service}}",code!~"5.."}[{{window}}]))'
    total: 'sum(rate(http_requests_total{service="{{service}}"}[{{window}}]))'
    objective: 0.999`})
	e.given("v1-err10")
	gen := load.Start(e.url, 100, 3*time.Minute)
	defer gen.Stop()
	time.Sleep(12 * time.Second) // Prometheus scrapes v1's errors every second

	out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v2")
	expect(t, out, code, 4, "held: SLO availability burns its error budget fast (1h burns", "both over 14.4×", "--emergency --reason")
	if w := e.weights(); w.Of(w.Live()) != 100 || e.instance(w.Live()).Version != "v1-err10" {
		t.Fatalf("a held rollout moved traffic: %s", w)
	}
	out, code = cli(t, e, "status", e.svc.Name, "--env", "test")
	expect(t, out, code, 0, "budget       availability (objective 0.999):", "% of the budget left; burn 1h ", "burning fast: 1h burns")
	t.Logf("status of the held rollout:\n%s", out)

	out, code = cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v2", "--emergency", "--reason", "the fix for the errors")
	expect(t, out, code, 0, "through the error budget of availability: emergency: the fix for the errors", "promoted")
	st, err := e.starter.Status(context.Background(), e.svc.Name, "test")
	if err != nil || st.Version != "v2" || len(st.Budgets) != 1 || !st.Budgets[0].FastBurn || st.Budgets[0].Burns[0].Burn < 14.4 {
		t.Fatalf("the emergency rollout's status: %v %+v", err, st)
	}
}
