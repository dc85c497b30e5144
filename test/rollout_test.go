package test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"
)

// deployUnderLoad rolls version out under 100 requests/s through the router
// and fails the test unless it was promoted, no request failed, and both
// the previous version and the new one served.
func (e *env) deployUnderLoad(previous, version string) *starter.Outcome {
	e.t.Helper()
	gen := load.Start(e.url, 100, 2*time.Minute)
	o := e.deploy(version)
	res := gen.Stop()
	if o.Kind != "" {
		e.t.Fatalf("%s: %s: %s", version, o.Kind, o.Reason)
	}
	requireNoFailures(e.t, res, 300)
	if res.ByVersion[previous] == 0 || res.ByVersion[version] == 0 {
		e.t.Fatalf("traffic did not move from %s to %s: %v", previous, version, res.ByVersion)
	}
	return o
}

func rolloutUnderLoad(t *testing.T, routerKind string) {
	e := newEnv(t, opts{router: routerKind})
	e.given("v1")
	if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
		t.Fatalf("after v1 the router says %s, want blue=100", w)
	}
	o := e.deployUnderLoad("v1", "v2")
	if w := e.weights(); w != (rollout.Weights{Green: 100}) {
		t.Fatalf("after v2 the router says %s, want green=100", w)
	}
	// the timeline: the weights it found, then each step's, in order
	var green []int
	for _, c := range o.Status.Timeline {
		green = append(green, c.Weights.Green)
	}
	if want := []int{0, 10, 25, 50, 75, 100}; !slices.Equal(green, want) {
		t.Fatalf("green's share over the rollout: %v, want %v", green, want)
	}
	if in := e.instance(rollout.Blue); in.Running {
		t.Fatalf("the old slot (blue, v1) is still running after the scale-down delay: %+v", in)
	}
}

func TestRolloutThroughHAProxyUnderLoadFailsNoRequest(t *testing.T) {
	rolloutUnderLoad(t, "haproxy")
}

func TestRolloutThroughEmbeddedCaddyUnderLoadFailsNoRequest(t *testing.T) {
	rolloutUnderLoad(t, "embedded")
}

func TestAbortUnderLoadFailsNoRequestAndKeepsTheBadSlotForInspection(t *testing.T) {
	e := newEnv(t, opts{bake: 3 * time.Second})
	e.given("v1")
	gen := load.Start(e.url, 100, 2*time.Minute)
	run := e.start("v2")
	e.waitFor("step 2", func(st *starterStatus) bool { return st.Step == 1 && st.Phase == rollout.PhaseShifting })
	st, err := e.starter.Control(context.Background(), e.svc.Name, e.svc.Environment, workflows.Abort, workflows.AbortRequest{Reason: "test abort", By: "test"})
	if err != nil {
		t.Fatal(err)
	}
	// the update answers once the stable slot has all traffic again
	if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
		t.Fatalf("abort answered with %s but the router says %s", st.Weights, w)
	}
	time.Sleep(time.Second)
	res := gen.Stop()
	o, err := e.starter.Wait(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	if o.Kind != workflows.ErrRolledBack {
		t.Fatalf("want rolled back, got %q %s", o.Kind, o.Reason)
	}
	requireNoFailures(t, res, 200)
	record(t, history(t, e, run), "deployment_aborted.json")
	if in := e.instance(rollout.Green); !in.Running || in.Version != "v2" {
		t.Fatalf("the aborted slot should still run v2 for inspection: %+v", in)
	}
}

// promote answers once the weights moved, as abort does: the CLI's answer
// is what the router now applies. A skip of the bake moves to the next
// step; --full to 100 %.
func TestPromoteAnswersOnceTheWeightsMoved(t *testing.T) {
	e := newEnv(t, opts{bake: time.Minute})
	e.given("v1")
	run := e.start("v2")
	e.waitFor("the bake of step 1", func(st *starterStatus) bool { return st.Step == 0 && !st.BakeEndsAt.IsZero() })
	out, code := cli(t, e, "promote", e.svc.Name, "--env", "test")
	expect(t, out, code, 0, "promote "+e.svc.Name+" in test: done in", "phase shifting, blue=75% green=25%")
	if w := e.weights(); w != (rollout.Weights{Blue: 75, Green: 25}) {
		t.Fatalf("promote answered %q but the router says %s", out, w)
	}
	out, code = cli(t, e, "promote", e.svc.Name, "--env", "test", "--full")
	expect(t, out, code, 0, "green=100%")
	if w := e.weights(); w != (rollout.Weights{Green: 100}) {
		t.Fatalf("promote --full answered %q but the router says %s", out, w)
	}
	// the bake at 100 % skipped too: the answer comes as the rollout leaves shifting
	out, code = cli(t, e, "promote", e.svc.Name, "--env", "test")
	expect(t, out, code, 0, "green=100%")
	if strings.Contains(out, "phase shifting") {
		t.Fatalf("the last bake's skip answered before the rollout moved on: %s", out)
	}
	o, err := e.starter.Wait(context.Background(), run)
	if err != nil || o.Kind != "" {
		t.Fatalf("v2: %v %+v", err, o)
	}
	record(t, history(t, e, run), "deployment_promote_answers_when_moved.json")
}

func TestBadVersionRollsBackByItself(t *testing.T) {
	e := newEnv(t, opts{bake: 3 * time.Second})
	e.given("v1")
	gen := load.Start(e.url, 100, 2*time.Minute)
	o := e.deploy("v3")
	res := gen.Stop()
	t.Logf("load: %s", res)
	if o.Kind != workflows.ErrRolledBack {
		t.Fatalf("want rolled back, got %q %s", o.Kind, o.Reason)
	}
	if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
		t.Fatalf("after the rollback the router says %s", w)
	}
	if o.Status.Step != 0 {
		t.Fatalf("analysis should catch it at the first step, got step %d", o.Status.Step+1)
	}
	if res.Failed == 0 || res.Failed > res.Requests/10 {
		t.Fatalf("a 50%%-failing version at 10%% for one analysis interval should fail a few requests, got %d of %d", res.Failed, res.Requests)
	}
}

// A request HAProxy cannot serve (no slot live yet) is a classified failure
// on the client's side and a line in HAProxy's httplog, which the load tests
// print beside their failures.
func TestAFailedRequestIsClassifiedAndFoundInHAProxysLog(t *testing.T) {
	e := newEnv(t, opts{})
	gen := load.Start(e.url, 20, time.Minute)
	time.Sleep(500 * time.Millisecond)
	res := gen.Stop()
	time.Sleep(200 * time.Millisecond) // HAProxy writes its log line as the session closes
	if res.Failed == 0 || res.Causes["503 from the router (no slot available)"] != res.Failed {
		t.Fatalf("with no slot live: %s, causes %v", res, res.Causes)
	}
	log := haproxyFailures(t)
	if !strings.Contains(log, "<NOSRV>") || !strings.Contains(log, " 503 ") {
		t.Fatalf("HAProxy's log of the failures:\n%s", log)
	}
	t.Logf("%s\nHAProxy: %s", res, strings.SplitN(log, "\n", 2)[0])
}
