package test

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/workflows"
)

var soakFull = flag.Bool("soak", false, "make soak: at least 1,000,000 requests and 300 weight changes per router (else the 2-minute CI version)")

// TestSoak sends steady load through a real router, from kept-alive and
// new-connection clients both, while real rollouts, aborts, the three
// rollback strategies and retires of old slots change the weights over and
// over. Not one request may fail. `make test` runs a minute per router;
// `make soak` (-soak) runs until each router has carried 1,000,000 requests
// at 1,000 req/s and seen 300 weight changes.
func TestSoak(t *testing.T) {
	for _, r := range []string{"haproxy", "embedded"} {
		t.Run(r, func(t *testing.T) { soak(t, r) })
	}
}

// soaker drives one service through the cycle and counts what it did.
type soaker struct {
	t       *testing.T
	e       *env
	n       int            // versions deployed so far
	changes int            // Shift activities scheduled (weight changes)
	ops     map[string]int // operations done, by kind
}

func soak(t *testing.T, routerKind string) {
	rate, length, minRequests, minChanges := 250, time.Minute, 20_000, 20
	if *soakFull {
		rate, length, minRequests, minChanges = 500, 15*time.Minute, 1_000_000, 300
	}
	e := newEnv(t, opts{router: routerKind, bake: 300 * time.Millisecond, scaleDown: 3 * time.Second, gradual: 2 * time.Second})
	s := &soaker{t: t, e: e, ops: map[string]int{}}
	e.given("soak1")
	s.n = 1
	// both clients at rate req/s; bounded, so the whole run stays bounded
	keep := load.Start(e.url, rate, 2*time.Hour)
	fresh := load.StartNewConnections(e.url, rate, 2*time.Hour)
	defer keep.Stop()
	defer fresh.Stop()
	started := time.Now()
	cycle := []func(){s.promote, func() { s.rollbackInWarmWindow(workflows.Immediate) }, s.promote, s.abortMidway,
		func() { s.rollbackInWarmWindow(workflows.Gradual) }, func() { s.rollbackInWarmWindow(workflows.Swap) }}
	for i := 0; ; i++ {
		k, f := keep.Snapshot(), fresh.Snapshot()
		if i >= len(cycle) && time.Since(started) >= length && k.Requests+f.Requests >= minRequests && s.changes >= minChanges {
			break
		}
		if time.Since(started) > 2*time.Hour-10*time.Minute {
			t.Fatalf("the soak ran out of time: %d requests, %d weight changes", k.Requests+f.Requests, s.changes)
		}
		if *soakFull && i%30 == 0 {
			fmt.Printf("soak %s: %s: %d requests (%d failed), %d weight changes\n", routerKind,
				time.Since(started).Round(time.Second), k.Requests+f.Requests, k.Failed+f.Failed, s.changes)
		}
		cycle[i%len(cycle)]()
	}
	k, f := keep.Stop(), fresh.Stop()
	kinds := make([]string, 0, len(s.ops))
	for op, n := range s.ops {
		kinds = append(kinds, fmt.Sprintf("%s %d", op, n))
	}
	sort.Strings(kinds)
	report := fmt.Sprintf("soak through %s for %s: %d requests at %d req/s, %d failed; %d weight changes (%s)\n  keep-alive:      %s\n  new connections: %s",
		routerKind, time.Since(started).Round(time.Second), k.Requests+f.Requests, 2*rate, k.Failed+f.Failed, s.changes,
		strings.Join(kinds, ", "), brief(k), brief(f))
	fmt.Println(report)
	t.Log(report)
	for _, r := range []load.Result{k, f} {
		if r.Failed != 0 {
			t.Errorf("%d of %d requests failed by cause %v; first: %+v", r.Failed, r.Requests, r.Causes, r.Failures)
		}
	}
	if t.Failed() && routerKind == "haproxy" {
		t.Logf("HAProxy's log of the failures:\n%s", haproxyFailures(t))
	}
	if k.Requests+f.Requests < minRequests || s.changes < minChanges {
		t.Fatalf("the soak carried %d requests and %d weight changes, want at least %d and %d", k.Requests+f.Requests, s.changes, minRequests, minChanges)
	}
}

// brief is a load result without its per-version counts (hundreds here).
func brief(r load.Result) string {
	out := fmt.Sprintf("%d requests, %d failed (p50 %s, p99 %s)", r.Requests, r.Failed, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond))
	for c, n := range r.Causes {
		out += fmt.Sprintf("; failed: %d × %s", n, c)
	}
	return out
}

func (s *soaker) next() string {
	s.n++
	return fmt.Sprintf("soak%d", s.n)
}

func (s *soaker) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 3*time.Minute)
}

// counted adds a run's weight changes, read from its history.
func (s *soaker) counted(run client.WorkflowRun) {
	s.changes += len(shiftsIn(s.t, historyOf(s.t, s.e.starter.C, run)))
}

// promote rolls a new version out to 100 %, waits out the warm window and
// the retire of the old slot.
func (s *soaker) promote() {
	v := s.next()
	run := s.e.start(v)
	ctx, cancel := s.ctx()
	defer cancel()
	o, err := s.e.starter.Wait(ctx, run)
	if err != nil || o.Kind != "" {
		s.t.Fatalf("%s: %v %+v", v, err, o)
	}
	s.counted(run)
	s.ops["promoted and retired"]++
}

// rollbackInWarmWindow promotes a version, then rolls back to the warm
// slot with strategy, then retires the slot it left.
func (s *soaker) rollbackInWarmWindow(strategy workflows.Strategy) {
	v := s.next()
	run := s.e.start(v)
	s.e.waitFor(v+" promoted", func(st *starterStatus) bool { return st.Version == v && st.Phase == rollout.PhaseScalingDown })
	ctx, cancel := s.ctx()
	defer cancel()
	rb, err := s.e.starter.Rollback(ctx, s.e.svc, strategy, "soak", "soak")
	if err != nil {
		s.t.Fatalf("%s rollback of %s: %v", strategy, v, err)
	}
	rep, err := s.e.starter.WaitRollback(ctx, rb)
	if err != nil || rep.Phase != rollout.PhaseRolledBack {
		s.t.Fatalf("%s rollback of %s: %v %+v", strategy, v, err, rep)
	}
	if _, err := s.e.starter.Wait(ctx, run); err != nil {
		s.t.Fatalf("%s after the rollback took over: %v", v, err)
	}
	s.counted(run)
	s.counted(rb)
	s.retire(rep.From)
	s.ops[string(strategy)+" rollback"]++
}

// abortMidway aborts a rollout in its second step's bake.
func (s *soaker) abortMidway() {
	v := s.next()
	run := s.e.start(v)
	s.e.waitFor(v+" at step 2", func(st *starterStatus) bool { return st.Version == v && st.Step == 1 && !st.BakeEndsAt.IsZero() })
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.e.starter.Control(ctx, s.e.svc.Name, s.e.svc.Environment, workflows.Abort, workflows.AbortRequest{Reason: "soak", By: "soak"}); err != nil {
		s.t.Fatalf("abort %s: %v", v, err)
	}
	o, err := s.e.starter.Wait(ctx, run)
	if err != nil || o.Status.Phase != rollout.PhaseRolledBack {
		s.t.Fatalf("%s aborted: %v %+v", v, err, o)
	}
	s.counted(run)
	s.retire(o.Status.Target)
	s.ops["aborted"]++
}

func (s *soaker) retire(slot rollout.Slot) {
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.e.starter.Retire(ctx, s.e.svc, slot); err != nil {
		s.t.Fatalf("retire %s: %v", slot, err)
	}
	s.ops["retires"]++
}
