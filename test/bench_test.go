package test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/check"
	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/workflows"
)

func quantiles(d []time.Duration) (p50, p99 time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return check.Quantile(d, 0.50), check.Quantile(d, 0.99)
}

// BenchmarkAbortToStable: abort request → 100 % on the stable slot, through
// a real HAProxy, over 30 aborts. The Update returns once the workflow's
// local activity has set and read back the weights; the router is then
// read again to confirm.
func BenchmarkAbortToStable(b *testing.B) {
	const runs = 30
	e := newEnv(b, opts{bake: 10 * time.Minute})
	e.given("v1")
	gen := load.Start(e.url, 50, 10*time.Minute)
	var lat []time.Duration
	for i := 0; i < runs; i++ {
		run := e.start(fmt.Sprintf("v2-%d", i))
		e.waitFor("baking at 10%", func(st *starterStatus) bool { return st.Step == 0 && !st.BakeEndsAt.IsZero() })
		t := time.Now()
		if _, err := e.starter.Control(context.Background(), e.svc.Name, e.svc.Environment, workflows.Abort,
			workflows.AbortRequest{Reason: "bench", By: "bench"}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
		if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
			b.Fatalf("after abort the router says %s", w)
		}
		if o, err := e.starter.Wait(context.Background(), run); err != nil || o.Kind != workflows.ErrRolledBack {
			b.Fatalf("abort %d: %v %+v", i, err, o)
		}
	}
	res := gen.Stop()
	p50, p99 := quantiles(lat)
	b.ReportMetric(float64(p50.Microseconds())/1000, "abort-p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "abort-p99-ms")
	fmt.Printf("abort → stable at 100%%: %d aborts, p50 %s, p99 %s (targets 50ms / 150ms); load meanwhile: %d requests, %d failed\n",
		runs, p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond), res.Requests, res.Failed)
}

// BenchmarkStepOverhead: a rollout with no bake, so the time between two
// steps is Switchyard's own work: a Shift activity through the server, the
// router change and its read-back, the history it writes.
func BenchmarkStepOverhead(b *testing.B) {
	e := newEnv(b, opts{noBake: true, steps: []int{5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95, 100}})
	e.given("v1")
	o := e.given("v2")
	gaps := stepGaps(o.Status)
	p50, p99 := quantiles(gaps)
	b.ReportMetric(float64(p50.Microseconds())/1000, "step-p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "step-p99-ms")
	fmt.Printf("orchestration overhead per step (no bake, HAProxy): %d steps, p50 %s, p99 %s\n",
		len(gaps), p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond))
}

// BenchmarkRequestsThroughRollout: failed/total requests at 200/s through
// HAProxy while v1 → v2 rolls out in five 2s steps.
func BenchmarkRequestsThroughRollout(b *testing.B) {
	for _, kind := range []string{"haproxy", "embedded"} {
		b.Run(kind, func(b *testing.B) {
			e := newEnv(b, opts{router: kind, bake: 2 * time.Second})
			e.given("v1")
			gen := load.Start(e.url, 200, 5*time.Minute)
			o := e.deploy("v2")
			res := gen.Stop()
			if o.Kind != "" {
				b.Fatalf("v2: %s", o.Reason)
			}
			b.ReportMetric(float64(res.Failed), "failed")
			b.ReportMetric(float64(res.Requests), "requests")
			fmt.Printf("requests through a rollout (%s router, 200/s): %s\n", kind, res)
		})
	}
}

// BenchmarkManualImmediateRollback: `switchyard rollback --strategy
// immediate` after a promotion, inside the scale-down window, over 30 runs:
// from the request (which first stops the rollout that holds the router) to
// 100 % on the previous slot, and to the end of the Rollback workflow.
func BenchmarkManualImmediateRollback(b *testing.B) {
	const runs = 30
	e := newEnv(b, opts{noBake: true, steps: []int{100}, scaleDown: 10 * time.Minute})
	e.given("v1")
	gen := load.Start(e.url, 50, 10*time.Minute)
	var applied, done []time.Duration
	for i := 0; i < runs; i++ {
		e.start(fmt.Sprintf("v2-%d", i))
		e.waitFor("promoted", func(st *starterStatus) bool { return st.Phase == rollout.PhaseScalingDown })
		t := time.Now()
		run, err := e.starter.Rollback(context.Background(), e.svc, workflows.Immediate, "bench", "bench")
		if err != nil {
			b.Fatal(err)
		}
		rep, err := e.starter.WaitRollback(context.Background(), run)
		if err != nil {
			b.Fatal(err)
		}
		done = append(done, time.Since(t))
		applied = append(applied, rep.Timeline[0].At.Sub(t))
		if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
			b.Fatalf("after the rollback the router says %s", w)
		}
	}
	res := gen.Stop()
	a50, a99 := quantiles(applied)
	d50, d99 := quantiles(done)
	b.ReportMetric(float64(a50.Microseconds())/1000, "applied-p50-ms")
	b.ReportMetric(float64(a99.Microseconds())/1000, "applied-p99-ms")
	fmt.Printf("manual immediate rollback: %d runs; request → 100%% on the previous slot p50 %s, p99 %s; → workflow done p50 %s, p99 %s; load meanwhile: %d requests, %d failed\n",
		runs, a50.Round(100*time.Microsecond), a99.Round(100*time.Microsecond), d50.Round(100*time.Microsecond), d99.Round(100*time.Microsecond), res.Requests, res.Failed)
	if res.Failed > 0 {
		fmt.Printf("  failed requests: %+v\n", res.Failures)
	}
}

// BenchmarkBadReleaseEarlyStop: a version failing 10 % of requests at 10 %
// of 500 req/s, ten times with the early stop on and ten with it off (then
// the analysis at the end of a 5 s interval decides): from the first
// request the bad version answered to 100 % on the stable slot, and the
// requests that failed meanwhile.
func BenchmarkBadReleaseEarlyStop(b *testing.B) {
	const runs = 10
	for _, mode := range []struct {
		name, analysis string
	}{
		{"early stop on", "{interval: 5s, maxErrorRate: 0.05}"},
		{"early stop off", "{interval: 5s, maxErrorRate: 0.05, earlyStop: {disabled: true}}"},
	} {
		b.Run(strings.ReplaceAll(mode.name, " ", "-"), func(b *testing.B) { badReleaseRuns(b, runs, mode.name, mode.analysis) })
	}
}

func badReleaseRuns(b *testing.B, runs int, name, analysis string) {
	e := newEnv(b, opts{steps: []int{10, 100}, bake: 30 * time.Second, analysis: analysis})
	e.given("v1")
	var took []time.Duration
	var failed []int
	for i := 0; i < runs; i++ {
		gen := load.Start(e.url, 500, 2*time.Minute)
		time.Sleep(200 * time.Millisecond)
		bad := fmt.Sprintf("v2-err10-%d", i)
		o := e.deploy(bad)
		res := gen.Stop()
		first, ok := res.FirstByVersion[bad]
		if o.Kind != workflows.ErrRolledBack || o.Status == nil || o.Status.Rollback == nil || !ok {
			b.Fatalf("%s run %d: %s %s (%s)", name, i, o.Kind, o.Reason, res)
		}
		took = append(took, o.Status.Rollback.EndedAt.Sub(first))
		failed = append(failed, res.Failed)
	}
	sort.Ints(failed)
	p50, p99 := quantiles(took)
	fmt.Printf("bad release (10%% errors at 10%% of 500 req/s), %s: %d runs; first bad request → 100%% stable p50 %s, p99 %s; failed requests p50 %d, p99 %d\n",
		name, runs, p50.Round(time.Millisecond), p99.Round(time.Millisecond), failed[len(failed)/2], failed[(len(failed)*99)/100])
}

// BenchmarkGuardBreachToWarmSlot: a promoted version (100 req/s through
// HAProxy) starts failing half its requests 3 s after promotion; the guard
// judges Prometheus's error rate every second. From the first bad request
// to 100 % on the warm old slot, over 3 runs.
func BenchmarkGuardBreachToWarmSlot(b *testing.B) {
	const runs = 3
	e, _ := guardEnv(b, 20*time.Second, "5m") // each good version waits out its warm window
	var took []time.Duration
	failed := 0
	for i := 0; i < runs; i++ {
		good := fmt.Sprintf("v1-%d", i)
		e.given(good)
		gen := load.Start(e.url, 100, 2*time.Minute)
		run := e.start("v2")
		e.waitFor("v2 at 100%", func(st *starterStatus) bool { return st.Weights.Of(st.Target) == 100 })
		time.Sleep(3 * time.Second)
		st, _ := e.starter.Status(context.Background(), e.svc.Name, "test")
		resp, err := http.Get("http://" + e.instance(st.Target).Addr + "/admin/fail?rate=0.5")
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		o, err := e.starter.Wait(context.Background(), run)
		res := gen.Stop()
		if err != nil || o.Kind != workflows.ErrRolledBack || o.Status.Rollback == nil || len(res.Failures) == 0 {
			b.Fatalf("run %d: %v %+v (%s)", i, err, o, res)
		}
		took = append(took, o.Status.Rollback.EndedAt.Sub(res.Failures[0].At))
		failed += res.Failed
	}
	p50, p99 := quantiles(took)
	b.ReportMetric(float64(p50.Milliseconds()), "first-bad-to-old-p50-ms")
	fmt.Printf("guard breach after promotion (50%% errors at 100 req/s, judged every 1 s on Prometheus): %d runs; first bad request → 100%% on the warm slot p50 %s, max %s; %d failed requests in all (the bad version's own)\n",
		runs, p50.Round(time.Millisecond), p99.Round(time.Millisecond), failed)
}
