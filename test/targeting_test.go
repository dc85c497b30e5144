package test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"
)

// Targeting (issue 23) on the embedded router: header and cookie routes,
// the test route to the idle slot, sticky clients.

const targetingRollout = `
  match: {header: {X-Canary: "true"}, cookie: {beta: "1"}}
  sticky: {cookie: sw-canary}`

const targetingChecks = `
  testRoute: {header: X-Switchyard-Test}`

// versionOf sends one request and returns the version that answered.
func versionOf(t *testing.T, c *http.Client, url string, set func(*http.Request)) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if set != nil {
		set(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d from %s", resp.StatusCode, resp.Header.Get("X-Version"))
	}
	return resp.Header.Get("X-Version"), nil
}

// stickyClients are browsers that keep cookies: each records the versions
// it was served, in order.
type stickyClients struct {
	clients []*http.Client
	mu      sync.Mutex
	seen    [][]string
	failed  int
	first   []string
}

func newStickyClients(n int) *stickyClients {
	s := &stickyClients{seen: make([][]string, n)}
	for range n {
		jar, _ := cookiejar.New(nil)
		s.clients = append(s.clients, &http.Client{Jar: jar, Timeout: 5 * time.Second})
	}
	return s
}

// round sends one request from every client, 50 at a time.
func (s *stickyClients) round(t *testing.T, url string) {
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	for i, c := range s.clients {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			v, err := versionOf(t, c, url, nil)
			s.mu.Lock()
			defer s.mu.Unlock()
			if err != nil {
				s.failed++
				if len(s.first) < 3 {
					s.first = append(s.first, err.Error())
				}
				return
			}
			if n := len(s.seen[i]); n == 0 || s.seen[i][n-1] != v {
				s.seen[i] = append(s.seen[i], v)
			}
		})
	}
	wg.Wait()
}

// flips counts clients that went back to the old version after the new
// one (flip-backs), and clients that moved at all.
func (s *stickyClients) flips(old string) (back, moved, onNew int) {
	for _, vs := range s.seen {
		if len(vs) > 1 {
			moved++
		}
		for i := 1; i < len(vs); i++ {
			if vs[i] == old {
				back++
				break
			}
		}
		if len(vs) > 0 && vs[len(vs)-1] != old {
			onNew++
		}
	}
	return back, moved, onNew
}

func TestHeaderCookieAndTestRoutesAndAStickyCanaryOnTheEmbeddedRouter(t *testing.T) {
	e := newEnv(t, opts{router: "embedded", steps: []int{spec.HeaderStep, 10, 25, 50, 100}, bake: 4 * time.Second,
		rolloutMore: targetingRollout, checksMore: targetingChecks})
	e.given("v1")
	clients := newStickyClients(1000)
	clients.round(t, e.url)
	run := e.start("v2")

	// the header step: the weights stay on v1, only matching requests reach v2
	e.waitFor("the header step", func(st *starterStatus) bool { return st.Step == 0 && !st.BakeEndsAt.IsZero() })
	requireRouted(t, e, 10)
	if w := e.weights(); w.Of(rollout.Green) != 0 {
		t.Fatalf("the header step moved weight: %s", w)
	}
	out, code := cli(t, e, "status", e.svc.Name, "--env", "test")
	expect(t, out, code, 0, "routes       header X-Canary: true or cookie beta=1 → green; test route X-Switchyard-Test: 1 → green; sticky by cookie sw-canary",
		"through the router's test route (X-Switchyard-Test: 1)")

	// the sticky clients, a round every 300 ms while the weights rise
	o := clients.throughRollout(t, e, run)
	if o.Status.Routes != nil {
		t.Fatalf("routes left in force after promotion: %s", o.Status.Routes)
	}
}

func TestAnAbortSendsStickyClientsBack(t *testing.T) {
	for _, r := range []string{"embedded", "haproxy", "caddy-modules"} {
		t.Run(r, func(t *testing.T) {
			o := opts{router: r, steps: []int{25, 50, 100}, bake: 20 * time.Second,
				rolloutMore: "\n  sticky: {cookie: sw-canary}"}
			if r == "haproxy" {
				o.router, o.haproxyRoutes = "", stickyRules
			}
			abortStickyClients(t, newEnv(t, o))
		})
	}
}

// abortStickyClients: 400 cookie-keeping clients at 25 %, each keeping its
// version, then an abort: every one of them back on v1, none failed.
func abortStickyClients(t *testing.T, e *env) {
	e.given("v1")
	clients := newStickyClients(400)
	run := e.start("v2")
	e.waitFor("25 %", func(st *starterStatus) bool { return st.Step == 0 && !st.BakeEndsAt.IsZero() })
	clients.round(t, e.url)
	clients.round(t, e.url)
	_, _, onNew := clients.flips("v1")
	if onNew < 50 || onNew > 150 {
		t.Fatalf("%d of 400 clients on v2 at 25 %%: want about 100", onNew)
	}
	// each keeps its version at the same weight
	before := fmt.Sprint(clients.seen)
	clients.round(t, e.url)
	if fmt.Sprint(clients.seen) != before {
		t.Fatal("a client changed version without the weight changing")
	}
	if _, err := e.starter.Control(context.Background(), e.svc.Name, "test", workflows.Abort, workflows.AbortRequest{Reason: "sticky test", By: "test"}); err != nil {
		t.Fatal(err)
	}
	if o, err := e.starter.Wait(context.Background(), run); err != nil || o.Kind != workflows.ErrRolledBack {
		t.Fatalf("abort: %+v %v", o, err)
	}
	clients.round(t, e.url)
	_, _, still := clients.flips("v1")
	if still != 0 || clients.failed != 0 {
		t.Fatalf("after the abort %d clients still on v2, %d requests failed", still, clients.failed)
	}
	t.Logf("%s: at 25 %%: %d of 400 sticky clients on v2; after the abort all 400 on v1, 0 failed", routerName(e), onNew)
	if !strings.Contains(fmt.Sprint(clients.seen[0]), "v1") {
		t.Fatal("no client saw v1")
	}
}

func TestShadowTrafficCatchesAVersionWhoseAnswersDifferWhileReturning200(t *testing.T) {
	// the embedded router, and a Caddy of its own with Switchyard's modules
	for _, r := range []string{"embedded", "caddy-modules"} {
		t.Run(r, func(t *testing.T) {
			shadowTraffic(t, newEnv(t, opts{router: r, steps: []int{spec.MirrorStep, 50, 100}, bake: 3 * time.Second,
				rolloutMore: "\n  mirror: {share: 0.5, compareBody: true, maxMismatchRate: 0.01, maxErrorRate: 0.02}"}))
		})
	}
}

// shadowTraffic deploys a version whose answers differ (200, a wrong price),
// one that fails a tenth of its copies, and a good one, under 100 req/s
// that never fail.
func shadowTraffic(t *testing.T, e *env) {
	e.given("v1")
	gen := load.Start(e.url+"price?item=7", 100, 3*time.Minute)
	// answers 200 with a wrong price: only the comparison can tell
	o := e.deploy("v2-wrongprice")
	if o.Kind != workflows.ErrRolledBack || !strings.Contains(o.Reason, "analysis failed at the mirror step: mismatch-rate: fail (value 1)") {
		t.Fatalf("v2-wrongprice: %s: %s", o.Kind, o.Reason)
	}
	for _, wc := range o.Status.Timeline {
		if wc.Weights.Of(o.Status.Target) > 0 {
			t.Fatalf("the mirror step gave the new version traffic: %v", o.Status.Timeline)
		}
	}
	t.Logf("v2-wrongprice: %s", o.Reason)
	// fails a tenth of its copies: the clients never see one
	o = e.deploy("v2-err10")
	if o.Kind != workflows.ErrRolledBack || !strings.Contains(o.Reason, "shadow-error-rate: fail") {
		t.Fatalf("v2-err10: %s: %s", o.Kind, o.Reason)
	}
	t.Logf("v2-err10: %s", o.Reason)
	// a good version passes the comparison and goes on
	o = e.deploy("v2")
	if o.Kind != "" {
		t.Fatalf("v2: %s: %s", o.Kind, o.Reason)
	}
	var mirrored string
	for _, ev := range o.Status.Events {
		if strings.HasPrefix(ev.Message, "analysis at the mirror step") {
			mirrored = ev.Message
		}
	}
	if !strings.Contains(mirrored, "mismatch-rate: pass (value 0)") || !strings.Contains(mirrored, "shadow-error-rate: pass (value 0)") {
		t.Errorf("v2's mirror step: %q", mirrored)
	}
	t.Logf("v2: %s", mirrored)
	if mirrored == "" {
		for _, ev := range o.Status.Events {
			t.Log(ev.Message)
		}
	}
	requireNoFailures(t, gen.Stop(), 1000)
}

// BenchmarkTargetingOverhead: the latency the embedded router adds for a
// header rule and for mirroring, at 500 req/s, as a ratio to the plain
// path measured in the same run (v1 live, no routes).
func BenchmarkTargetingOverhead(b *testing.B) {
	e := newEnv(b, opts{router: "embedded", steps: []int{spec.MirrorStep, spec.HeaderStep, 100}, bake: 10 * time.Minute,
		rolloutMore: targetingRollout + "\n  mirror: {share: 1, compareBody: true}"})
	targetingOverhead(b, e, true)
}

// BenchmarkTargetingOverheadOnACaddyWithSwitchyardModules: the same on a
// Caddy of its own built from cmd/caddy (a separate process).
func BenchmarkTargetingOverheadOnACaddyWithSwitchyardModules(b *testing.B) {
	e := newEnv(b, opts{router: "caddy-modules", steps: []int{spec.MirrorStep, spec.HeaderStep, 100}, bake: 10 * time.Minute,
		rolloutMore: targetingRollout + "\n  mirror: {share: 1, compareBody: true}"})
	targetingOverhead(b, e, true)
}

// BenchmarkTargetingOverheadOnHAProxy: the same for HAProxy's route rules
// (ACLs reading the map file), against the same backend with the map empty.
func BenchmarkTargetingOverheadOnHAProxy(b *testing.B) {
	rules := func(mapPath string) string {
		s := &spec.Service{Name: "bench", Router: spec.Router{Kind: spec.RouterHAProxy, HAProxy: spec.HAProxy{Map: mapPath}}}
		s.Rollout.Match = &spec.Match{Header: map[string]string{"X-Canary": "true"}, Cookie: map[string]string{"beta": "1"}}
		return router.HAProxyRoutes(s)
	}
	e := newEnv(b, opts{steps: []int{spec.HeaderStep, 100}, bake: 10 * time.Minute, haproxyRoutes: rules,
		rolloutMore: "\n  match: {header: {X-Canary: \"true\"}, cookie: {beta: \"1\"}}"})
	targetingOverhead(b, e, false)
}

func targetingOverhead(b *testing.B, e *env, mirror bool) {
	e.given("v1")
	const rps, each = 500, 8 * time.Second
	measure := func(what string, gen *load.Generator) load.Result {
		time.Sleep(each)
		r := gen.Stop()
		if r.Failed > 0 || r.Requests < rps*int(each/time.Second)/2 {
			b.Fatalf("%s: %s", what, r)
		}
		return r
	}
	plain := measure("plain", load.Start(e.url+"price?item=7", rps, time.Minute))
	run := e.start("v2")
	var mirrored load.Result
	if mirror {
		e.waitFor("the mirror step", func(st *starterStatus) bool { return st.Step == 0 && !st.BakeEndsAt.IsZero() })
		mirrored = measure("mirrored", load.Start(e.url+"price?item=7", rps, time.Minute))
		if _, err := e.starter.Control(context.Background(), e.svc.Name, "test", workflows.Promote, workflows.PromoteRequest{By: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	e.waitFor("the header step", func(st *starterStatus) bool {
		return st.Step >= 0 && e.svc.Rollout.Steps[st.Step] == spec.HeaderStep && !st.BakeEndsAt.IsZero()
	})
	unmatched := measure("unmatched", load.Start(e.url+"price?item=7", rps, time.Minute))
	matched := measure("header-routed", load.StartWithHeader(e.url+"price?item=7", rps, time.Minute, "X-Canary", "true"))
	if matched.ByVersion["v2"] != matched.Requests || unmatched.ByVersion["v1"] != unmatched.Requests {
		b.Fatalf("routing: matched %v, unmatched %v", matched.ByVersion, unmatched.ByVersion)
	}
	if _, err := e.starter.Control(context.Background(), e.svc.Name, "test", workflows.Abort, workflows.AbortRequest{Reason: "bench done", By: "bench"}); err != nil {
		b.Fatal(err)
	}
	_, _ = e.starter.Wait(context.Background(), run)
	ratio := func(r load.Result) string {
		return fmt.Sprintf("p50 %s (%.2f×), p99 %s (%.2f×)", r.P50.Round(time.Microsecond), float64(r.P50)/float64(plain.P50),
			r.P99.Round(time.Microsecond), float64(r.P99)/float64(plain.P99))
	}
	b.ReportMetric(float64(matched.P50)/float64(plain.P50), "header-p50-ratio")
	line := fmt.Sprintf("targeting on the %s router at %d req/s, %s each, same run: plain path p50 %s, p99 %s; header rule, not matching: %s; header-routed to v2: %s",
		routerName(e), rps, each, plain.P50.Round(time.Microsecond), plain.P99.Round(time.Microsecond), ratio(unmatched), ratio(matched))
	if mirror {
		b.ReportMetric(float64(mirrored.P50)/float64(plain.P50), "mirror-p50-ratio")
		line += "; every request mirrored and compared (share 1, body hash): " + ratio(mirrored)
	}
	fmt.Println(line)
}

// routedCases are the requests a header step sends to v2 (the header, the
// cookie, the test route) and to v1 (anything else).
var routedCases = []struct {
	name string
	set  func(*http.Request)
	want string
}{
	{"no header", nil, "v1"},
	{"X-Canary: true", func(r *http.Request) { r.Header.Set("X-Canary", "true") }, "v2"},
	{"X-Canary: false", func(r *http.Request) { r.Header.Set("X-Canary", "false") }, "v1"},
	{"cookie beta=1", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "beta", Value: "1"}) }, "v2"},
	{"cookie beta=2", func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "beta", Value: "2"}) }, "v1"},
	{"test route", func(r *http.Request) { r.Header.Set("X-Switchyard-Test", "1") }, "v2"},
}

// requireRouted sends each of routedCases n times through the router.
func requireRouted(t *testing.T, e *env, n int) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range routedCases {
		for range n {
			if v, err := versionOf(t, c, e.url, tc.set); err != nil || v != tc.want {
				t.Fatalf("%s at the header step: %q %v, want %s", tc.name, v, err, tc.want)
			}
		}
	}
}

func TestHeaderCookieAndTestRoutesOnHAProxyWithoutAReload(t *testing.T) {
	match := &spec.Match{Header: map[string]string{"X-Canary": "true"}, Cookie: map[string]string{"beta": "1"}}
	tr := &spec.TestRoute{Header: "X-Switchyard-Test", Value: "1"}
	rules := func(mapPath string) string {
		s := &spec.Service{Name: "routes", Router: spec.Router{Kind: spec.RouterHAProxy, HAProxy: spec.HAProxy{Map: mapPath}}}
		s.Rollout.Match, s.Checks.TestRoute = match, tr
		return router.HAProxyRoutes(s)
	}
	var front string
	e := newEnv(t, opts{steps: []int{spec.HeaderStep, 25, 100}, bake: 6 * time.Second, haproxyRoutes: rules,
		rolloutMore: "\n  match: {header: {X-Canary: \"true\"}, cookie: {beta: \"1\"}}",
		checksMore:  "\n  testRoute: {header: X-Switchyard-Test, url: FRONT}"})
	front = strings.TrimSuffix(e.url, "/")
	// the test route's URL is the frontend, known once the env has its ports
	b, _ := os.ReadFile(e.file)
	if err := os.WriteFile(e.file, []byte(strings.Replace(string(b), "FRONT", front, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	svc, err := starter.ResolveSpec(e.file, "test")
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	// the CLI prints the same rules the backend runs
	out, code := cli(t, e, "haproxy-routes", e.svc.Name, "-f", e.file, "--env", "test")
	expect(t, out, code, 0, "acl sy_m1 req.hdr(X-Canary) -m str true", "acl sy_m2 req.cook(beta) -m str 1",
		"use-server green if sy_m1 { var(txn.sy_target) -m str green }")
	if out != router.HAProxyRoutes(e.svc) {
		t.Fatalf("the CLI printed other rules:\n%s", out)
	}
	e.given("v1")
	gen := load.Start(e.url, 100, 3*time.Minute)
	run := e.start("v2")
	e.waitFor("the header step", func(st *starterStatus) bool { return st.Step == 0 && !st.BakeEndsAt.IsZero() })
	requireRouted(t, e, 10)
	if w := e.weights(); w.Of(rollout.Green) != 0 {
		t.Fatalf("the header step moved weight: %s", w)
	}
	e.waitFor("past the header step", func(st *starterStatus) bool { return st.Weights.Of(st.Target) > 0 })
	c := &http.Client{Timeout: 5 * time.Second}
	for range 20 {
		if v, err := versionOf(t, c, e.url, func(r *http.Request) { r.Header.Set("X-Canary", "true") }); err != nil || v != "v2" {
			t.Fatalf("X-Canary once the weights moved: %q %v", v, err)
		}
	}
	o := e.promotedUnderLoad(run, gen, 300)
	checks := fmt.Sprint(o.Status.Checks)
	if !strings.Contains(checks, "through the router's test route (X-Switchyard-Test: 1)") {
		t.Fatalf("the checks did not go through the router: %s", checks)
	}
	// promoted: the map is empty again, every request by weight
	rt, err := e.router.(router.Targeter).Routes(context.Background())
	if err != nil || !rt.Empty() {
		t.Fatalf("routes left in HAProxy's map: %+v %v", rt, err)
	}
}

func TestHeaderCookieAndTestRoutesOnACaddyOfItsOwn(t *testing.T) {
	e := newEnv(t, opts{router: "caddy", steps: []int{spec.HeaderStep, 50, 100}, bake: 6 * time.Second,
		rolloutMore: "\n  match: {header: {X-Canary: \"true\"}, cookie: {beta: \"1\"}}",
		checksMore:  "\n  testRoute: {header: X-Switchyard-Test, url: FRONT}"})
	b, _ := os.ReadFile(e.file)
	if err := os.WriteFile(e.file, []byte(strings.Replace(string(b), "FRONT", strings.TrimSuffix(e.url, "/"), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	svc, err := starter.ResolveSpec(e.file, "test")
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	e.given("v1")
	run := e.start("v2")
	e.waitFor("the header step", func(st *starterStatus) bool { return st.Step == 0 && !st.BakeEndsAt.IsZero() })
	requireRouted(t, e, 10)
	o, err := e.starter.Wait(context.Background(), run)
	if err != nil || o.Kind != "" {
		t.Fatalf("v2: %+v %v", o, err)
	}
	if !strings.Contains(fmt.Sprint(o.Status.Checks), "through the router's test route (X-Switchyard-Test: 1)") {
		t.Fatalf("the checks did not go through Caddy: %v", o.Status.Checks)
	}
	rt, err := e.router.(router.Targeter).Routes(context.Background())
	if err != nil || !rt.Empty() {
		t.Fatalf("routes left in Caddy's config: %+v %v", rt, err)
	}
}

// stickyRollout runs v1 → v2 over 10 → 25 → 50 → 100 with 1,000
// cookie-keeping clients sending a round every 300 ms, and fails on a
// failed request or a client that went back to v1.
func stickyRollout(t *testing.T, e *env) {
	t.Helper()
	e.given("v1")
	clients := newStickyClients(1000)
	clients.round(t, e.url)
	clients.throughRollout(t, e, e.start("v2"))
}

// throughRollout sends a round from every client every 300 ms until the
// rollout ends, then one more, and fails on a failed request or a client
// that went back to v1 after v2, or one not on v2 at the end.
func (s *stickyClients) throughRollout(t *testing.T, e *env, run client.WorkflowRun) *starter.Outcome {
	t.Helper()
	done := make(chan struct{})
	rounds := 0
	go func() {
		defer close(done)
		for {
			if st, err := e.starter.Status(context.Background(), e.svc.Name, "test"); err == nil && st.Phase.Done() {
				return
			}
			s.round(t, e.url)
			rounds++
			time.Sleep(300 * time.Millisecond)
		}
	}()
	o, err := e.starter.Wait(context.Background(), run)
	<-done
	if err != nil || o.Kind != "" {
		t.Fatalf("v2: %+v %v", o, err)
	}
	s.round(t, e.url)
	back, moved, onNew := s.flips("v1")
	t.Logf("%s: %d cookie-keeping clients, %d rounds over %s: %d moved to v2 (each at most once), %d flipped back, %d failed requests",
		routerName(e), len(s.clients), rounds+2, o.Status.StepsText(), moved, back, s.failed)
	if s.failed > 0 || back != 0 || onNew != len(s.clients) || rounds < 3 {
		t.Fatalf("failed %d (%v), flipped back %d, on v2 at the end %d of %d, rounds %d", s.failed, s.first, back, onNew, len(s.clients), rounds)
	}
	return o
}

// routerName names the test's router in its log lines.
func routerName(e *env) string {
	if e.svc.Router.Caddy.SwitchyardModules {
		return "caddy (Switchyard's modules)"
	}
	return string(e.svc.Router.Kind)
}

// stickyRules are HAProxy's backend rules for a cookie-sticky canary.
func stickyRules(mapPath string) string {
	s := &spec.Service{Name: "sticky", Router: spec.Router{Kind: spec.RouterHAProxy, HAProxy: spec.HAProxy{Map: mapPath}}}
	s.Rollout.Sticky = &spec.Sticky{Cookie: "sw-canary"}
	return router.HAProxyRoutes(s)
}

func TestStickyClientsNeverFlipBackOnHAProxy(t *testing.T) {
	e := newEnv(t, opts{steps: []int{10, 25, 50, 100}, bake: 3 * time.Second, haproxyRoutes: stickyRules,
		rolloutMore: "\n  sticky: {cookie: sw-canary}"})
	stickyRollout(t, e)
}

// A Caddy with Switchyard's modules keeps the live weights and routes in
// its state dir: killed at 50 % and started again from its autosaved config
// (which holds the weights it was loaded with, 100 % v1), it serves 50 %
// and the header route, not the old config's weights.
func TestACaddyWithSwitchyardModulesRestartedServesTheLiveWeightsAndRoutes(t *testing.T) {
	e := newEnv(t, opts{router: "caddy-modules", steps: []int{50, 100}, bake: time.Minute,
		rolloutMore: "\n  match: {header: {X-Canary: \"true\"}}"})
	e.given("v1")
	e.start("v2")
	e.waitFor("50 %", func(st *starterStatus) bool { return st.Step == 0 && !st.BakeEndsAt.IsZero() })
	restartCaddyWithModules(t, filepath.Dir(e.file), e.svc.Router.Caddy.Admin)
	c := &http.Client{Timeout: 5 * time.Second}
	n := map[string]int{}
	for range 200 {
		v, err := versionOf(t, c, e.url, nil)
		if err != nil {
			t.Fatalf("after the restart: %v", err)
		}
		n[v]++
	}
	if n["v2"] < 70 || n["v2"] > 130 {
		t.Fatalf("after the restart at 50 %%: %v of 200 requests", n)
	}
	for range 20 {
		if v, err := versionOf(t, c, e.url, func(r *http.Request) { r.Header.Set("X-Canary", "true") }); err != nil || v != "v2" {
			t.Fatalf("X-Canary after the restart: %q %v", v, err)
		}
	}
	if w := e.weights(); w.Of(rollout.Green) != 50 {
		t.Fatalf("the router reads %s after the restart", w)
	}
	t.Logf("Caddy killed and restarted at 50 %%: %v of 200 requests, X-Canary still on v2", n)
}

// A Caddy of its own built with Switchyard's modules (cmd/caddy, a separate
// process) keeps sticky canaries as the embedded router does.
func TestStickyClientsNeverFlipBackOnACaddyWithSwitchyardModules(t *testing.T) {
	e := newEnv(t, opts{router: "caddy-modules", steps: []int{10, 25, 50, 100}, bake: 3 * time.Second,
		rolloutMore: "\n  sticky: {cookie: sw-canary}"})
	stickyRollout(t, e)
}
