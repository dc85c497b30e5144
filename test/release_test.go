package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/release"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router"
	"github.com/switchyard/switchyard/starter"
	workerpkg "github.com/switchyard/switchyard/worker"
	"github.com/switchyard/switchyard/workflows"
)

// releaseEnv is a release of two services, backend and frontend (after
// backend), through staging and production: four real HAProxy processes,
// one per service and environment, real slot processes, one worker.
type releaseEnv struct {
	t       *testing.T
	dir     string
	file    string
	starter *starter.Starter
	routers map[string]router.Router // service/env
	urls    map[string]string        // service/env → the router's frontend
}

func newReleaseEnv(t *testing.T, releaseExtra string) *releaseEnv {
	return newReleaseEnvBake(t, releaseExtra, "1s", true)
}

// newReleaseEnvBake is newReleaseEnv with a bake time, and a worker in the
// test process or none (the test runs its own worker process).
func newReleaseEnvBake(t *testing.T, releaseExtra, bake string, worker bool) *releaseEnv {
	return newReleaseEnvWith(t, releaseExtra, bake, worker, nil)
}

// newReleaseEnvWith is newReleaseEnvBake with more of each service's
// environment: run entries (", secretEnv: {…}") and lines ("    migrations: …").
func newReleaseEnvWith(t *testing.T, releaseExtra, bake string, worker bool, more func(svc, env string) (run, lines string)) *releaseEnv {
	t.Helper()
	// short: a unix socket's path must fit in 108 bytes, and test names are long
	dir, err := os.MkdirTemp("", "rel")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	name := fmt.Sprintf("r%d", time.Now().UnixNano()%100000)
	e := &releaseEnv{t: t, dir: dir, routers: map[string]router.Router{}, urls: map[string]string{}}
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte(fmt.Sprintf(`#!/bin/sh
case "$VERSION" in v1*) export DEMO_DB_COLUMN=name ;; *) export DEMO_DB_COLUMN=full_name ;; esac
case "$VERSION" in
  v3|bad-*) exec %s/bad/demo-app ;;
  *) exec %s/good/demo-app ;;
esac
`, bins, bins)), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"backend", "frontend"} {
		var envs strings.Builder
		for _, env := range []string{"staging", "production"} {
			front, blue, green := freePort(t), freePort(t), freePort(t)
			hdir := filepath.Join(dir, svc+"-"+env)
			if err := os.MkdirAll(hdir, 0o755); err != nil {
				t.Fatal(err)
			}
			sock := startHAProxy(t, hdir, front, blue, green, 1)
			e.urls[svc+"/"+env] = fmt.Sprintf("http://127.0.0.1:%d/", front)
			run, lines := "", ""
			if more != nil {
				run, lines = more(svc, env)
			}
			fmt.Fprintf(&envs, "  %s:\n    run: {ports: {blue: %d, green: %d}%s}\n    router: {kind: haproxy, haproxy: {socket: %s, backend: app}}\n%s", env, blue, green, run, sock, lines)
		}
		src := fmt.Sprintf(`service: %s-%s
run:
  command: ["./run.sh"]
checks:
  health: {successes: 2, interval: 100ms, timeout: 20s}
  smoke: [{path: /version, bodyContains: "{{version}}"}]
  performance: {requests: 50, concurrency: 2, maxP95: 500ms}
rollout:
  steps: [25, 100]
  bake: %s
  analysis: {interval: 1s, maxErrorRate: 0.05}
  scaleDownDelay: 0s
environments:
%s`, svc, name, bake, envs.String())
		if err := os.WriteFile(filepath.Join(dir, svc+".yaml"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rel := fmt.Sprintf(`release: %s
services:
  backend-%s:  {spec: backend.yaml}
  frontend-%s: {spec: frontend.yaml, after: [backend-%s]}
environments:
  - name: staging
  - name: production
%s`, name, name, name, name, releaseExtra)
	e.file = filepath.Join(dir, "release.yaml")
	if err := os.WriteFile(e.file, []byte(rel), 0o644); err != nil {
		t.Fatal(err)
	}
	c := dial(t)
	queue := "q-" + name
	e.starter = &starter.Starter{C: c, TaskQueue: queue}
	if worker {
		w := workerpkg.New(c, workerpkg.Config{TaskQueue: queue, StateDir: filepath.Join(dir, "state"), Embedded: embedded})
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Stop)
	}
	r := e.release()
	for _, env := range []string{"staging", "production"} {
		specs, err := r.ResolveSpecs(env)
		if err != nil {
			t.Fatal(err)
		}
		for _, svc := range []string{"backend", "frontend"} {
			s := specs[svc+"-"+name]
			rt, err := router.New(s, nil)
			if err != nil {
				t.Fatal(err)
			}
			e.routers[svc+"/"+env] = rt
			t.Cleanup(func() { _ = activities.StopSlots(context.Background(), s) })
		}
	}
	return e
}

func (e *releaseEnv) release() *release.Release {
	r, err := release.Load(e.file)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *releaseEnv) svc(short string) string { return short + "-" + e.release().Name }

// start runs a release to its end and returns its status.
func (e *releaseEnv) run(backend, frontend string) *workflows.ReleaseStatus {
	e.t.Helper()
	r := e.release()
	run, err := e.starter.StartRelease(context.Background(), r, map[string]string{e.svc("backend"): backend, e.svc("frontend"): frontend}, "", "test", starter.DeployOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	st, err := e.starter.WaitRelease(ctx, run)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ev := range st.Events {
		e.t.Logf("%s %s", ev.At.Format("15:04:05.000"), ev.Message)
	}
	return st
}

// waitPhase waits up to two minutes for the release to be in a phase.
func (e *releaseEnv) waitPhase(phase workflows.ReleasePhase) *workflows.ReleaseStatus {
	e.t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		st, err := e.starter.ReleaseStatus(context.Background(), e.release().Name)
		if err == nil && st.Phase == phase {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the release never reached %s: %+v %v", phase, st, err)
		}
	}
}

func (e *releaseEnv) weights(svc, env string) rollout.Weights {
	w, err := e.routers[svc+"/"+env].Weights(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

func TestAReleaseGoesThroughStagingAndProductionInDependencyOrderUnderLoad(t *testing.T) {
	e := newReleaseEnv(t, "")
	if st := e.run("v1", "v1"); st.Phase != workflows.ReleasePromoted {
		t.Fatalf("v1: %s: %s", st.Phase, st.Reason)
	}
	var gens []*load.Generator
	for _, u := range e.urls {
		gens = append(gens, load.Start(u, 25, 3*time.Minute))
	}
	st := e.run("v2", "v2")
	var total load.Result
	for _, g := range gens {
		r := g.Stop()
		total.Requests += r.Requests
		total.Failed += r.Failed
	}
	if st.Phase != workflows.ReleasePromoted {
		t.Fatalf("v2: %s: %s", st.Phase, st.Reason)
	}
	t.Logf("load on the four routers through the release: %d requests, %d failed", total.Requests, total.Failed)
	record(t, historyOf(t, e.starter.C, e.starter.C.GetWorkflow(context.Background(), workflows.ReleaseID(e.release().Name), "")),
		"release_promoted_through_two_environments.json")

	if total.Failed != 0 || total.Requests < 200 {
		t.Fatalf("load: %d requests, %d failed", total.Requests, total.Failed)
	}
	requireDependencyOrder(t, e)

	out, code := cli(t, &env{queue: e.starter.TaskQueue, address: server.HostPort}, "history", e.release().Name)
	expect(t, out, code, 0, "release ", "deploy ")
	if strings.Count(out, " release ") != 2 || strings.Count(out, " deploy ") != 8 {
		t.Fatalf("history of the release: want 2 releases and 8 rollouts:\n%s", out)
	}
	// each rollout names its service and environment
	for _, svc := range []string{"backend", "frontend"} {
		for _, env := range []string{"staging", "production"} {
			if !regexp.MustCompile(`deploy +` + e.svc(svc) + ` +` + env + ` `).MatchString(out) {
				t.Fatalf("history of the release lacks a row for %s in %s:\n%s", e.svc(svc), env, out)
			}
		}
	}

	rollBackProductionByHand(t, e)
}

func TestABadFrontendRollsTheBackendBackWithIt(t *testing.T) {
	e := newReleaseEnv(t, "")
	if st := e.run("v1", "v1"); st.Phase != workflows.ReleasePromoted {
		t.Fatalf("v1: %s: %s", st.Phase, st.Reason)
	}
	gens := map[string]*load.Generator{}
	for k, u := range e.urls {
		gens[k] = load.Start(u, 25, 3*time.Minute)
	}
	st := e.run("v2", "bad-2")
	if st.Phase != workflows.ReleaseRolledBack || !strings.Contains(st.Reason, "analysis failed") {
		t.Fatalf("want rolled back by the frontend's analysis, got %s: %s", st.Phase, st.Reason)
	}
	for k, g := range gens {
		r := g.Stop()
		t.Logf("load through %s: %d requests, %d failed", k, r.Requests, r.Failed)
		if k != "frontend/staging" && r.Failed != 0 {
			t.Fatalf("%s failed %d requests: only the bad frontend's own answers may fail", k, r.Failed)
		}
	}
	for _, s := range st.Services {
		t.Logf("%s/%s: %s %s", s.Service, s.Environment, s.Phase, s.Reason)
	}
	record(t, historyOf(t, e.starter.C, e.starter.C.GetWorkflow(context.Background(), workflows.ReleaseID(e.release().Name), "")),
		"release_rolled_back_with_its_bad_frontend.json")

	// what passed staging last (v1, v1) goes on to production, from the CLI
	out, code := cli(t, &env{queue: e.starter.TaskQueue, address: server.HostPort},
		"release", "start", e.release().Name, "-f", e.file, "--set-from", "staging")
	expect(t, out, code, 0, fmt.Sprintf("versions that passed staging: %s=v1,%s=v1; starting at production", e.svc("backend"), e.svc("frontend")),
		"release "+e.release().Name+": promoted")
	if strings.Contains(out, "deploying "+e.svc("backend")+" v1 to staging") {
		t.Fatalf("--set-from staging ran staging again:\n%s", out)
	}
	eventsOnce(t, out, "release start read from a pipe")
	for _, svc := range []string{"backend", "frontend"} {
		w := e.weights(svc, "staging")
		if w.Of(w.Live()) != 100 {
			t.Fatalf("%s/staging is split: %s", svc, w)
		}
		inst := releaseInstance(t, e, svc, "staging", w.Live())
		if inst.Version != "v1" {
			t.Fatalf("%s/staging serves %s, want v1 back", svc, inst.Version)
		}
	}
	// the backend went back after the frontend failed
	b, _ := e.starter.Wait(context.Background(), e.starter.Run(e.svc("backend"), "staging"))
	f, _ := e.starter.Wait(context.Background(), e.starter.Run(e.svc("frontend"), "staging"))
	if b.Kind != workflows.ErrRolledBack || f.Kind != workflows.ErrRolledBack {
		t.Fatalf("backend %q, frontend %q: both should have rolled back", b.Kind, f.Kind)
	}
	if bt, ft := b.Status.Rollback.EndedAt, f.Status.Rollback.EndedAt; bt.Before(ft) {
		t.Fatalf("the backend rolled back (%s) before the frontend did (%s)", bt, ft)
	}
	if _, err := e.starter.C.DescribeWorkflowExecution(context.Background(), workflows.DeploymentID(e.svc("backend"), "production"), ""); err == nil {
		// production ran v1 in the first release: the newest run must still be that one
		o, _ := e.starter.Wait(context.Background(), e.starter.Run(e.svc("backend"), "production"))
		if o.Status.Version != "v1" {
			t.Fatalf("production was touched: backend runs %s", o.Status.Version)
		}
	}
}

func TestABadReleaseFileOrVersionsStartNothing(t *testing.T) {
	e := newReleaseEnv(t, "")
	r := e.release()
	for _, c := range []struct{ set, want string }{
		{e.svc("backend") + "=v2", "no version for " + e.svc("frontend")},
		{e.svc("backend") + "=v2," + e.svc("frontend") + "=v2,nope=v1", `has no service "nope"`},
		{"backend", "is not SERVICE=VERSION"},
	} {
		if _, err := starter.ParseVersions(r, c.set); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("--set %s: want %q, got %v", c.set, c.want, err)
		}
	}
	out, code := cli(t, nil, "release", "start", r.Name, "-f", e.file, "--set", e.svc("backend")+"=v2")
	expect(t, out, code, 2, "no version for "+e.svc("frontend"))
	out, code = cli(t, nil, "release", "approve", r.Name, "--env", "production", "--reason", "x")
	expect(t, out, code, 2, "no release "+r.Name+" is running")
	bad := filepath.Join(e.dir, "cycle.yaml")
	src, _ := os.ReadFile(e.file)
	_ = os.WriteFile(bad, []byte(strings.Replace(string(src), "{spec: backend.yaml}", "{spec: backend.yaml, after: ["+e.svc("frontend")+"]}", 1)), 0o644)
	out, code = cli(t, nil, "release", "start", r.Name, "-f", bad, "--set", "x=1")
	expect(t, out, code, 2, "cycle.yaml:3: services."+e.svc("backend")+".after: a cycle")
}

func releaseInstance(t *testing.T, e *releaseEnv, svc, env string, slot rollout.Slot) rollout.Instance {
	t.Helper()
	specs, err := e.release().ResolveSpecs(env)
	if err != nil {
		t.Fatal(err)
	}
	s := specs[e.svc(svc)]
	return inspect(t, s, slot)
}

func TestAFreezePausesARunningReleaseAndRefusesNewOnesUntilUnfrozen(t *testing.T) {
	e := newReleaseEnvBake(t, "", "4s", true)
	r := e.release()
	if st := e.run("v1", "v1"); st.Phase != workflows.ReleasePromoted {
		t.Fatalf("v1: %s: %s", st.Phase, st.Reason)
	}
	ctx := context.Background()
	run, err := e.starter.StartRelease(ctx, r, map[string]string{e.svc("backend"): "v2", e.svc("frontend"): "v2"}, "", "test", starter.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// freeze while the backend shifts in staging
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		st, err := e.starter.Status(ctx, e.svc("backend"), "staging")
		if err == nil && st.Version == "v2" && st.Phase == rollout.PhaseShifting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the backend never started shifting")
		}
	}
	as := &env{queue: e.starter.TaskQueue, address: server.HostPort}
	out, code := cli(t, as, "freeze", r.Name, "-f", e.file, "--reason", "incident 42")
	expect(t, out, code, 0, "release "+r.Name+" frozen (incident 42)")
	out, code = cli(t, as, "freeze", r.Name, "-f", e.file, "--reason", "again")
	expect(t, out, code, 5, "already frozen", "incident 42")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := e.starter.Status(ctx, e.svc("backend"), "staging")
		if err == nil && st.Paused {
			t.Logf("backend paused at step %d/%d, %s", st.Step+1, len(st.Steps), st.Weights)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the freeze did not pause the backend: %+v", st)
		}
	}
	// nothing new goes while frozen: a release, a deploy of one of its services
	out, code = cli(t, as, "release", "start", r.Name, "-f", e.file, "--set", e.svc("backend")+"=v3,"+e.svc("frontend")+"=v3")
	expect(t, out, code, 5, "frozen", "incident 42")
	frontendSpec := filepath.Join(e.dir, "frontend.yaml")
	out, code = cli(t, as, "deploy", e.svc("frontend"), "-f", frontendSpec, "--env", "production", "--version", "v9")
	expect(t, out, code, 5, "release "+r.Name+" frozen", "incident 42", "--emergency")
	out, code = cli(t, as, "deploy", e.svc("frontend"), "-f", frontendSpec, "--env", "production", "--version", "v9", "--emergency")
	expect(t, out, code, 2, "--emergency needs --reason")
	// an emergency goes through, and says so in its events
	out, code = cli(t, as, "deploy", e.svc("frontend"), "-f", frontendSpec, "--env", "production", "--version", "v2", "--emergency", "--reason", "hotfix INC-42")
	expect(t, out, code, 0, "(emergency: hotfix INC-42)", "promoted")
	if st, _ := e.starter.Status(ctx, e.svc("backend"), "staging"); !st.Paused || st.Phase != rollout.PhaseShifting {
		t.Fatalf("the backend went on while frozen: %s paused=%v", st.Phase, st.Paused)
	}
	out, code = cli(t, as, "unfreeze", r.Name)
	expect(t, out, code, 0, "unfrozen")
	ctxw, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	st, err := e.starter.WaitRelease(ctxw, run)
	if err != nil || st.Phase != workflows.ReleasePromoted {
		t.Fatalf("after unfreeze: %v %+v", err, st)
	}
	var events []string
	for _, ev := range st.Events {
		events = append(events, ev.Message)
	}
	joined := strings.Join(events, "\n")
	for _, want := range []string{"frozen by ", ": incident 42", "paused " + e.svc("backend") + " in staging", "unfrozen by "} {
		if !strings.Contains(joined, want) {
			t.Fatalf("release events lack %q:\n%s", want, joined)
		}
	}
	out, code = cli(t, as, "unfreeze", r.Name)
	expect(t, out, code, 2, "is not frozen")
}

func TestAWorkerKilledMidReleaseFinishesItWithEachServiceDeployedOnce(t *testing.T) {
	e := newReleaseEnvBake(t, "    approval: {required: true, timeout: 10m, onTimeout: abort}\n", "3s", false)
	as := &env{queue: e.starter.TaskQueue, address: server.HostPort}
	w := startWorker(t, as)
	r := e.release()
	ctx := context.Background()
	// v1 everywhere first (production's approval sent as soon as it waits)
	first, err := e.starter.StartRelease(ctx, r, map[string]string{e.svc("backend"): "v1", e.svc("frontend"): "v1"}, "", "test", starter.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	approve := func() {
		e.waitPhase(workflows.ReleaseAwaitingApproval)
		out, code := cli(t, as, "release", "approve", r.Name, "--env", "production", "--reason", "CAB-1")
		expect(t, out, code, 0, "production approved")
	}
	approve()
	if st, err := e.starter.WaitRelease(ctx, first); err != nil || st.Phase != workflows.ReleasePromoted {
		t.Fatalf("v1: %v %+v", err, st)
	}
	var gens []*load.Generator
	for _, u := range e.urls {
		gens = append(gens, load.Start(u, 25, 4*time.Minute))
	}
	run, err := e.starter.StartRelease(ctx, r, map[string]string{e.svc("backend"): "v2", e.svc("frontend"): "v2"}, "", "test", starter.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// kill 1: while the backend bakes its first step in staging
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		st, err := e.starter.Status(ctx, e.svc("backend"), "staging")
		if err == nil && st.Version == "v2" && st.Step == 0 && !st.BakeEndsAt.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the backend never baked in staging")
		}
	}
	w = killAndRestart(t, as, w, "while the backend baked in staging")
	// kill 2: while the release waits for production's approval
	e.waitPhase(workflows.ReleaseAwaitingApproval)
	killAndRestart(t, as, w, "while the release waited for production's approval")
	approve()
	st, err := e.starter.WaitRelease(ctx, run)
	var total load.Result
	for _, g := range gens {
		res := g.Stop()
		total.Requests += res.Requests
		total.Failed += res.Failed
	}
	if err != nil || st.Phase != workflows.ReleasePromoted {
		t.Fatalf("after two worker crashes: %v %+v", err, st)
	}
	t.Logf("load on the four routers: %d requests, %d failed", total.Requests, total.Failed)
	if total.Failed != 0 {
		t.Fatalf("%d requests failed", total.Failed)
	}
	// each service deployed once per environment: one child started each
	h := historyOf(t, e.starter.C, run)
	children := map[string]int{}
	for _, ev := range h.Events {
		if a := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes(); a != nil {
			children[a.WorkflowId]++
		}
	}
	if len(children) != 4 {
		t.Fatalf("want 4 children (2 services x 2 environments), got %v", children)
	}
	for id, n := range children {
		if n != 1 {
			t.Fatalf("%s was started %d times", id, n)
		}
	}
	for _, env := range []string{"staging", "production"} {
		for _, svc := range []string{"backend", "frontend"} {
			if w := e.weights(svc, env); w.Of(w.Live()) != 100 || releaseInstance(t, e, svc, env, w.Live()).Version != "v2" {
				t.Fatalf("%s/%s: %s", svc, env, w)
			}
		}
	}
	record(t, h, "release_approved_after_worker_crashes.json")
}

func TestAReleaseOutsideItsWindowWaitsForItToOpen(t *testing.T) {
	now := time.Now().UTC()
	open := now.Truncate(time.Minute).Add(time.Minute)
	if open.Sub(now) < 10*time.Second { // too soon to see it wait
		open = open.Add(time.Minute)
	}
	if open.Hour() == 23 && open.Minute() >= 58 || open.Day() != now.Day() {
		t.Skip("too close to midnight UTC for a window that opens in a minute and closes the same day")
	}
	e := newReleaseEnv(t, fmt.Sprintf("windows:\n  allow: [\"Mon-Sun %s-23:59 UTC\"]\n", open.Format("15:04")))
	r := e.release()
	ctx := context.Background()
	run, err := e.starter.StartRelease(ctx, r, map[string]string{e.svc("backend"): "v1", e.svc("frontend"): "v1"}, "", "test", starter.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st := e.waitPhase(workflows.ReleaseWaitingWindow); !st.WaitingUntil.Equal(open) {
		t.Fatalf("waiting until %s, want %s", st.WaitingUntil, open)
	}
	t.Logf("waiting for the window at %s (now %s)", open.Format("15:04:05"), time.Now().UTC().Format("15:04:05"))
	ctxw, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	st, err := e.starter.WaitRelease(ctxw, run)
	if err != nil || st.Phase != workflows.ReleasePromoted {
		t.Fatalf("%v %+v", err, st)
	}
	o, _ := e.starter.Wait(ctx, e.starter.Run(e.svc("backend"), "staging"))
	if o.Status.StartedAt.Before(open) {
		t.Fatalf("the first rollout started at %s, before the window opened at %s", o.Status.StartedAt, open)
	}
	t.Logf("window opened %s; first rollout started %s", open.Format("15:04:05.000"), o.Status.StartedAt.UTC().Format("15:04:05.000"))
}

// requireDependencyOrder reads the release's rollouts: each ran v2 for the
// release, held its old slot until the release was done, and started only
// after what it depends on promoted (the frontend after the backend,
// production after staging).
func requireDependencyOrder(t *testing.T, e *releaseEnv) {
	// the order, from the rollouts' own histories: the frontend's first step
	// comes after the backend promoted, production after staging
	at := map[string]time.Time{}
	for _, env := range []string{"staging", "production"} {
		for _, svc := range []string{"backend", "frontend"} {
			o, err := e.starter.Wait(context.Background(), e.starter.Run(e.svc(svc), env))
			if err != nil || o.Status == nil {
				t.Fatalf("%s/%s: %v", svc, env, err)
			}
			if o.Status.Version != "v2" || o.Status.Release != e.release().Name {
				t.Fatalf("%s/%s ran %s for release %q", svc, env, o.Status.Version, o.Status.Release)
			}
			at[svc+"/"+env+"/start"] = o.Status.StartedAt
			// promoted: all traffic on the new version, the old slot held for the release
			for _, ev := range o.Status.Events {
				if strings.HasPrefix(ev.Message, "promoted; slot") && strings.Contains(ev.Message, "kept warm until release") {
					at[svc+"/"+env+"/promoted"] = ev.At
				}
			}
			if at[svc+"/"+env+"/promoted"].IsZero() {
				t.Fatalf("%s/%s never held its old slot for the release: %v", svc, env, o.Status.Events)
			}
			if w := e.weights(svc, env); w.Live() != o.Status.Stable || w.Of(o.Status.Stable) != 100 {
				t.Fatalf("%s/%s: router %s, rollout says %s is live", svc, env, w, o.Status.Stable)
			}
		}
	}
	for _, c := range [][2]string{
		{"backend/staging/promoted", "frontend/staging/start"},
		{"frontend/staging/promoted", "backend/production/start"},
		{"backend/production/promoted", "frontend/production/start"},
	} {
		if at[c[1]].Before(at[c[0]]) {
			t.Fatalf("%s (%s) came before %s (%s)", c[1], at[c[1]].Format("15:04:05.000"), c[0], at[c[0]].Format("15:04:05.000"))
		}
		t.Logf("%s %s ≤ %s %s", c[0], at[c[0]].Format("15:04:05.000"), c[1], at[c[1]].Format("15:04:05.000"))
	}
}

// rollBackProductionByHand rolls the ended release back in production with
// --strategy immediate: dependents first, one change to 100 % each, staging
// untouched.
func rollBackProductionByHand(t *testing.T, e *releaseEnv) {
	// by hand, after it ended: production back on v1, the frontend first
	out, code := cli(t, &env{queue: e.starter.TaskQueue, address: server.HostPort},
		"release", "rollback", e.release().Name, "-f", e.file, "--env", "production", "--reason", "p99 up", "--strategy", "immediate")
	expect(t, out, code, 0, "rolling release "+e.release().Name+" back in production", "release "+e.release().Name+": promoted")
	// immediate: each service checked, then all of its traffic moved in one change, no bakes
	for _, svc := range []string{"backend", "frontend"} {
		st, err := e.starter.Status(context.Background(), e.svc(svc), "production")
		if err != nil {
			t.Fatal(err)
		}
		var moves []string
		for _, c := range st.Timeline {
			moves = append(moves, c.Weights.String())
		}
		if st.Version != "v1" || len(st.Timeline) != 2 || st.Timeline[1].Weights.Of(st.Target) != 100 {
			t.Fatalf("%s's immediate rollback to v1 moved traffic %v (version %s), want one change to 100%%", svc, moves, st.Version)
		}
	}
	if strings.Index(out, "deploying "+e.svc("frontend")+" v1 to production") > strings.Index(out, "deploying "+e.svc("backend")+" v1 to production") {
		t.Fatalf("the backend went back before the frontend that needs it:\n%s", out)
	}
	for _, svc := range []string{"backend", "frontend"} {
		w := e.weights(svc, "production")
		if v := releaseInstance(t, e, svc, "production", w.Live()).Version; v != "v1" || w.Of(w.Live()) != 100 {
			t.Fatalf("%s/production after the rollback: %s runs %s", svc, w, v)
		}
		if v := releaseInstance(t, e, svc, "staging", e.weights(svc, "staging").Live()).Version; v != "v2" {
			t.Fatalf("%s/staging was touched: runs %s", svc, v)
		}
	}
}
