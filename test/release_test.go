package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/release"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/worker"
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
			fmt.Fprintf(&envs, "  %s:\n    run: {ports: {blue: %d, green: %d}}\n    router: {kind: haproxy, haproxy: {socket: %s, backend: app}}\n", env, blue, green, sock)
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
  bake: 1s
  analysis: {interval: 1s, maxErrorRate: 0.05}
  scaleDownDelay: 0s
environments:
%s`, svc, name, envs.String())
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
	w := worker.New(c, worker.Config{TaskQueue: queue, StateDir: filepath.Join(dir, "state"), Embedded: embedded})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
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
	run, err := e.starter.StartRelease(context.Background(), r, map[string]string{e.svc("backend"): backend, e.svc("frontend"): frontend}, "test")
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
