package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/switchyard/switchyard/internal/kube"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/worker"
	"github.com/switchyard/switchyard/workflows"
)

// kubeEnv is a service on the kubernetes platform against the real API
// server, deployed by an in-process worker whose client has only the
// shipped Role.
func kubeEnv(t *testing.T, k *kubeAPI, routerYAML, extra string) (*env, *standIn) {
	t.Helper()
	dir := t.TempDir()
	blue, green := freePort(t), freePort(t)
	src := fmt.Sprintf(`service: api
platform: kubernetes
kubernetes:
  namespace: shop
  kubeconfig: %s
  image: registry.example.com/shop/api
  replicas: 2
  resources: {requests: {cpu: 50m, memory: 32Mi}}
  progressDeadline: 3s
  # the "Pods" are the stand-in's demo apps on 127.0.0.1
  slotAddress: "127.0.0.1:{{slotPort}}"
run:
  ports: {blue: %d, green: %d}
%s
checks:
  health: {successes: 2, interval: 100ms, timeout: 20s}
  smoke: [{path: /version, bodyContains: "{{version}}"}]
  performance: {requests: 20, concurrency: 2, maxP95: 500ms}
rollout:
  bake: 1s
  analysis: {interval: 1s, maxErrorRate: 0.05, metricsPath: /metrics}
  scaleDownDelay: 0s
rollback:
  gradual: {duration: 4s}
%s
environments:
  test: {}
`, k.workerKC, blue, green, routerYAML, extra)
	path := filepath.Join(dir, "api.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	svc, err := starter.ResolveSpec(path, "test")
	if err != nil {
		t.Fatalf("spec: %v\n%s", err, src)
	}
	e := &env{t: t, svc: svc, file: path, queue: "q-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), address: server.HostPort}
	if e.router, err = router.New(svc, embedded); err != nil {
		t.Fatal(err)
	}
	c := dial(t)
	e.starter = &starter.Starter{C: c, TaskQueue: e.queue}
	w := worker.New(c, worker.Config{TaskQueue: e.queue, StateDir: filepath.Join(dir, "state"), Embedded: embedded})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return e, k.startStandIn(map[string]int{"blue": blue, "green": green})
}

// weightWatch records every distinct split the router reports while a rollout runs.
func weightWatch(e *env) (stop func() []rollout.Weights) {
	var mu sync.Mutex
	var seen []rollout.Weights
	done := make(chan struct{})
	finished := make(chan struct{})
	read := func() {
		if w, err := e.router.Weights(context.Background()); err == nil {
			mu.Lock()
			if len(seen) == 0 || seen[len(seen)-1] != w {
				seen = append(seen, w)
			}
			mu.Unlock()
		}
	}
	go func() {
		defer close(finished)
		for {
			read()
			select {
			case <-done:
				read() // the state the rollout ended in, which the last poll may have missed
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() []rollout.Weights {
		close(done)
		<-finished
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

func TestKubernetesGatewayAPIRolloutAbortAndEveryRollbackOnARealAPIServerWithStandInPods(t *testing.T) {
	k := startKube(t, true)
	e, _ := kubeEnv(t, k, "router: {kind: gateway-api, gatewayAPI: {route: api, gateway: public, gatewayNamespace: gateways}}", "")
	ctx := context.Background()
	e.given("v1")
	d, err := k.admin.AppsV1().Deployments("shop").Get(ctx, "api-blue", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.example.com/shop/api:v1" || *d.Spec.Replicas != 2 || d.Labels["switchyard.io/version"] != "v1" ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/healthz" || c.Resources.Requests.Cpu().String() != "50m" {
		t.Fatalf("deployment shop/api-blue: image %s, replicas %d, labels %v, probe %+v, requests %v", c.Image, *d.Spec.Replicas, d.Labels, c.ReadinessProbe, c.Resources.Requests)
	}
	s, err := k.admin.CoreV1().Services("shop").Get(ctx, "api-blue", metav1.GetOptions{})
	if err != nil || s.Spec.Selector["switchyard.io/slot"] != "blue" || s.Spec.Ports[0].Port != 80 {
		t.Fatalf("service shop/api-blue: %v %+v", err, s)
	}
	if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
		t.Fatalf("after v1 the HTTPRoute says %s", w)
	}
	route, err := k.admin.Discovery().ServerResourcesForGroupVersion("gateway.networking.k8s.io/v1")
	if err != nil || route == nil {
		t.Fatalf("gateway API not served: %v", err)
	}

	// every step, as the HTTPRoute reports it
	watch := weightWatch(e)
	o := e.deploy("v2")
	seen := watch()
	if o.Kind != "" {
		t.Fatalf("v2: %s: %s", o.Kind, o.Reason)
	}
	want := []rollout.Weights{{Blue: 100}, {Blue: 90, Green: 10}, {Blue: 75, Green: 25}, {Blue: 50, Green: 50}, {Blue: 25, Green: 75}, {Green: 100}}
	if !slices.Equal(seen, want) {
		t.Fatalf("the HTTPRoute went through %v, want %v", seen, want)
	}
	old, _ := k.admin.AppsV1().Deployments("shop").Get(ctx, "api-blue", metav1.GetOptions{})
	if *old.Spec.Replicas != 0 {
		t.Fatalf("the retired slot still has %d replicas", *old.Spec.Replicas)
	}
	t.Logf("v2: HTTPRoute weights %v; api-blue scaled to 0", seen)

	// abort mid-bake: back to 100 % on green at once
	e.svc.Rollout.Bake = spec.Duration(time.Minute)
	e.start("v3-abort")
	e.waitFor("v3-abort shifting", func(st *starterStatus) bool { return st.Phase == rollout.PhaseShifting && st.Step >= 0 })
	if _, err := e.starter.Control(ctx, "api", "test", workflows.Abort, workflows.AbortRequest{Reason: "test abort", By: "test"}); err != nil {
		t.Fatal(err)
	}
	if w := e.weights(); w != (rollout.Weights{Green: 100}) {
		t.Fatalf("after the abort the HTTPRoute says %s", w)
	}

	// each rollback strategy from a promoted v4 (green → blue) whose old slot is kept warm
	warm := spec.Duration(10 * time.Minute)
	e.svc.Rollout.Bake, e.svc.Rollout.ScaleDownDelay = 0, &warm
	for i, strategy := range workflows.Strategies {
		version := fmt.Sprintf("v%d", 4+i)
		e.start(version)
		e.waitFor(version+" promoted, old slot warm", func(st *starterStatus) bool { return st.Version == version && st.Phase == rollout.PhaseScalingDown })
		live, prev := e.weights().Live(), e.weights().Live().Other()
		watch := weightWatch(e)
		rb, err := e.starter.Rollback(ctx, e.svc, strategy, "test "+string(strategy), "test")
		if err != nil {
			t.Fatalf("%s: %v", strategy, err)
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		rep, err := e.starter.WaitRollback(rctx, rb)
		cancel()
		seen := watch()
		if err != nil {
			t.Fatalf("%s: %v", strategy, err)
		}
		if w := e.weights(); w.Of(prev) != 100 {
			t.Fatalf("%s: after the rollback the HTTPRoute says %s, want 100%% on %s", strategy, w, prev)
		}
		if strategy == workflows.Gradual && len(seen) < 5 {
			t.Fatalf("gradual: the HTTPRoute went through only %v", seen)
		}
		t.Logf("%s rollback %s → %s: HTTPRoute %v in %s", strategy, live, prev, seen, rep.Duration().Round(time.Millisecond))
		if strategy == workflows.Swap {
			if _, err := k.admin.AppsV1().Deployments("shop").Get(ctx, "api-"+string(live), metav1.GetOptions{}); err != nil {
				t.Fatalf("swap should keep the bad slot: %v", err)
			}
		}
	}
}

func TestKubernetesServiceRouterFlipsTheSelectorWithStandInPods(t *testing.T) {
	k := startKube(t, false)
	e, _ := kubeEnv(t, k, "router: {kind: kubernetes-service}", "")
	ctx := context.Background()
	selector := func() string {
		s, err := k.admin.CoreV1().Services("shop").Get(ctx, "api", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s.Spec.Selector["switchyard.io/slot"]
	}
	e.given("v1")
	if got := selector(); got != "blue" {
		t.Fatalf("after v1 the stable Service selects %q", got)
	}
	e.given("v2")
	if got := selector(); got != "green" {
		t.Fatalf("after v2 the stable Service selects %q", got)
	}
	if _, err := e.starter.Rollback(ctx, e.svc, workflows.Gradual, "no", "test"); err == nil || !strings.Contains(err.Error(), "cannot split traffic") {
		t.Fatalf("a gradual rollback through a selector flip: want a refusal, got %v", err)
	}
	t.Logf("stable Service shop/api: blue after v1, green after v2; a gradual rollback refused")
}

func TestKubernetesBadInputWithStandInPods(t *testing.T) {
	k := startKube(t, false)
	gw := "router: {kind: gateway-api, gatewayAPI: {route: api, gateway: public}}"
	e, _ := kubeEnv(t, k, gw, "")
	variant := func(old, new string) string {
		b, _ := os.ReadFile(e.file)
		if !strings.Contains(string(b), old) {
			t.Fatalf("the spec has no %q", old)
		}
		path := filepath.Join(t.TempDir(), "api.yaml")
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	deploy := func(file, version string, code int, wants ...string) string {
		t.Helper()
		out, got := cli(t, e, "deploy", "api", "-f", file, "--env", "test", "--version", version)
		expect(t, out, got, code, wants...)
		return reasonLine(out)
	}
	// the Gateway API CRDs are not installed yet
	t.Logf("CRDs absent: %s", deploy(e.file, "v1", 4, "Gateway API CRDs"))
	k.InstallGatewayCRDs("standard")
	t.Logf("no kubeconfig: %s", deploy(variant("kubeconfig: "+k.workerKC, "kubeconfig: /nonexistent/kubeconfig"), "v1", 4, "kubeconfig /nonexistent/kubeconfig"))
	unreachable := k.kubeconfig("unreachable", "x")
	b, _ := os.ReadFile(unreachable)
	_ = os.WriteFile(unreachable, []byte(strings.Replace(string(b), k.url, fmt.Sprintf("https://127.0.0.1:%d", freePort(t)), 1)), 0o600)
	t.Logf("API server unreachable: %s", deploy(variant("kubeconfig: "+k.workerKC, "kubeconfig: "+unreachable), "v1", 4, "cannot reach the API server"))
	t.Logf("forbidden: %s", deploy(variant("kubeconfig: "+k.workerKC, "kubeconfig: "+k.nobodyKC), "v1", 4, "forbidden", "deployments/kubernetes/rbac.yaml"))
	// a namespace that does not exist: the worker's Role cannot even see that, so it hears "forbidden"
	t.Logf("namespace missing (worker): %s", deploy(variant("namespace: shop", "namespace: nope"), "v1", 4, `in the namespace "nope"`, "check kubernetes.namespace"))
	admin := variant("kubeconfig: "+k.workerKC, "kubeconfig: "+k.adminKC)
	b, _ = os.ReadFile(admin)
	_ = os.WriteFile(admin, []byte(strings.Replace(string(b), "namespace: shop", "namespace: nope", 1)), 0o644)
	t.Logf("namespace missing (admin): %s", deploy(admin, "v1", 4, `namespaces "nope" not found`, "kubectl create namespace"))
	// a live v1, then a v2 whose rollout never becomes available
	e.given("v1")
	t.Logf("progress deadline: %s", deploy(e.file, "stuck-2", 4, "missed its progress deadline"))
	if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
		t.Fatalf("after the failures the HTTPRoute says %s, want blue=100 untouched", w)
	}
}

func TestGatewayAPIHeaderRoutesAndAMirrorAsHTTPRouteRulesOnARealAPIServer(t *testing.T) {
	k := startKube(t, true)
	e, _ := kubeEnv(t, k, "router: {kind: gateway-api, gatewayAPI: {route: api, gateway: public, gatewayNamespace: gateways}}", "")
	ctx := context.Background()
	e.given("v1")
	mismatch, errs := 0.01, 0.05
	e.svc.Rollout.Steps = spec.Steps{spec.MirrorStep, spec.HeaderStep, 50, 100}
	e.svc.Rollout.Bake = spec.Duration(3 * time.Second)
	e.svc.Rollout.Match = &spec.Match{Header: map[string]string{"X-Canary": "true"}, Cookie: map[string]string{"beta": "1"}}
	e.svc.Rollout.Mirror = &spec.Mirror{Share: 0.25, MaxMismatchRate: &mismatch, MaxErrorRate: &errs}
	run := e.start("v2")
	route := httpRoute(t, e)
	e.waitFor("the mirror step", func(st *starterStatus) bool { return st.Step == 0 && !st.BakeEndsAt.IsZero() })
	r := route()
	f := r.Spec.Rules[0].Filters
	if len(f) != 1 || f[0].RequestMirror == nil || f[0].RequestMirror.BackendRef.Name != "api-green" || *f[0].RequestMirror.Percent != 25 {
		t.Fatalf("the mirror step's first rule: %+v", f)
	}
	if len(r.Spec.Rules) != 3 {
		t.Fatalf("at the mirror step the route has %d rules, want the weighted one, the header one and the cookie one", len(r.Spec.Rules))
	}
	e.waitFor("the header step", func(st *starterStatus) bool { return st.Step == 1 && !st.BakeEndsAt.IsZero() })
	r = route()
	if len(r.Spec.Rules[0].Filters) != 0 {
		t.Fatalf("the mirror outlived its step: %+v", r.Spec.Rules[0].Filters)
	}
	hdr, cookie := r.Spec.Rules[1], r.Spec.Rules[2]
	if h := hdr.Matches[0].Headers[0]; h.Name != "X-Canary" || h.Value != "true" || hdr.BackendRefs[0].Name != "api-green" {
		t.Fatalf("the header rule: %+v", hdr)
	}
	if c := cookie.Matches[0].Headers[0]; c.Name != "Cookie" || *c.Type != gwv1.HeaderMatchRegularExpression || c.Value != `(^|;\s*)beta=1(;|$)` {
		t.Fatalf("the cookie rule: %+v", cookie)
	}
	if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
		t.Fatalf("the header step moved weight: %s", w)
	}
	o, err := e.starter.Wait(ctx, run)
	if err != nil || o.Kind != "" {
		t.Fatalf("v2: %+v %v", o, err)
	}
	r = route()
	if len(r.Spec.Rules) != 1 || len(r.Spec.Rules[0].Filters) != 0 || e.weights() != (rollout.Weights{Green: 100}) {
		t.Fatalf("after promotion the route has %d rules, filters %+v, weights %s", len(r.Spec.Rules), r.Spec.Rules[0].Filters, e.weights())
	}
	t.Logf("mirror step: RequestMirror 25%% to api-green; header step: rules for X-Canary and the beta cookie to api-green; promoted: one rule, green=100%%")
}

// A sticky canary on the Gateway API is the HTTPRoute's sessionPersistence
// (the gateway pins each client to the backend it first got), which only
// the experimental channel's CRD keeps: on the standard one the API server
// prunes it without an error, so Switchyard reads the route back and stops
// before any weight moves.
func TestGatewayAPIStickyCanaryIsSessionPersistenceAndAStandardCRDIsRefused(t *testing.T) {
	k := startKube(t, true)
	e, _ := kubeEnv(t, k, "router: {kind: gateway-api, gatewayAPI: {route: api, gateway: public, gatewayNamespace: gateways}}", "")
	ctx := context.Background()
	e.given("v1")
	e.svc.Rollout.Steps = spec.Steps{25, 50, 100}
	e.svc.Rollout.Bake = spec.Duration(2 * time.Second)
	e.svc.Rollout.Sticky = &spec.Sticky{Cookie: "sw-canary"}
	route := httpRoute(t, e)

	// the standard channel: refused, nothing moved
	o := e.deploy("v2")
	if o.Kind == "" || !strings.Contains(o.Reason, "dropped rules[0].sessionPersistence") || !strings.Contains(o.Reason, "experimental channel") {
		t.Fatalf("sticky on the standard CRD: %s: %s", o.Kind, o.Reason)
	}
	for _, wc := range o.Status.Timeline {
		if wc.Weights.Of(rollout.Green) > 0 {
			t.Fatalf("weight moved to v2 without stickiness: %v", o.Status.Timeline)
		}
	}
	if w := e.weights(); w != (rollout.Weights{Blue: 100}) || len(route().Spec.Rules) != 1 {
		t.Fatalf("after the refusal: weights %s, %d rules", w, len(route().Spec.Rules))
	}
	t.Logf("standard CRD: %s: %s", o.Kind, o.Reason)

	// the experimental channel: the weighted rule keeps clients by cookie
	k.InstallGatewayCRDs("experimental")
	run := e.start("v2")
	e.waitFor("25 %", func(st *starterStatus) bool { return st.Step == 0 && !st.BakeEndsAt.IsZero() })
	sp := route().Spec.Rules[0].SessionPersistence
	if sp == nil || *sp.SessionName != "sw-canary" || sp.AbsoluteTimeout == nil || *sp.AbsoluteTimeout != "24h" || *sp.Type != gwv1.CookieBasedSessionPersistence || *sp.CookieConfig.LifetimeType != gwv1.PermanentCookieLifetimeType {
		t.Fatalf("at 25 %% the weighted rule's sessionPersistence: %+v", sp)
	}
	if w := e.weights(); w != (rollout.Weights{Blue: 75, Green: 25}) {
		t.Fatalf("at 25 %%: %s", w)
	}
	if o, err := e.starter.Wait(ctx, run); err != nil || o.Kind != "" {
		t.Fatalf("v2: %+v %v", o, err)
	}
	if sp := route().Spec.Rules[0].SessionPersistence; sp != nil || e.weights() != (rollout.Weights{Green: 100}) {
		t.Fatalf("after promotion: sessionPersistence %+v, weights %s", sp, e.weights())
	}

	// an abort takes the persistence away with the weight: every client back
	run = e.start("v3")
	e.waitFor("25 % of v3", func(st *starterStatus) bool { return st.Step == 0 && !st.BakeEndsAt.IsZero() })
	if route().Spec.Rules[0].SessionPersistence == nil {
		t.Fatal("v3 at 25 %: no sessionPersistence")
	}
	if _, err := e.starter.Control(ctx, e.svc.Name, "test", workflows.Abort, workflows.AbortRequest{Reason: "sticky test", By: "test"}); err != nil {
		t.Fatal(err)
	}
	if o, err := e.starter.Wait(ctx, run); err != nil || o.Kind != workflows.ErrRolledBack {
		t.Fatalf("abort: %+v %v", o, err)
	}
	if sp := route().Spec.Rules[0].SessionPersistence; sp != nil || e.weights() != (rollout.Weights{Green: 100}) {
		t.Fatalf("after the abort: sessionPersistence %+v, weights %s", sp, e.weights())
	}
	t.Logf("experimental CRD: sessionPersistence {sessionName: sw-canary, type: Cookie, lifetime: Permanent, absoluteTimeout: 24h} on the weighted rule at 25 %%, gone after promotion and after an abort")
}

// httpRoute reads shop/api with the worker's own client: the HTTPRoute as
// Switchyard wrote it.
func httpRoute(t *testing.T, e *env) func() *gwv1.HTTPRoute {
	kc, err := kube.For(e.svc)
	if err != nil {
		t.Fatal(err)
	}
	return func() *gwv1.HTTPRoute {
		r, err := kc.Gateway.GatewayV1().HTTPRoutes("shop").Get(context.Background(), "api", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}
