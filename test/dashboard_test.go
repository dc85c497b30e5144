package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/internal/dashboard"
	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"
)

func chromium(t *testing.T) string {
	for _, b := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(b); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH (apt-get install chromium); .ci/run installs it")
	return ""
}

// screenshot saves the page as name.png in $SWITCHYARD_SCREENSHOTS (or the
// test's temp dir) and logs where.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("SWITCHYARD_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", path, len(png))
}

func evalString(t *testing.T, ctx context.Context, js string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDashboardShowsTheWeightsChangeAsTheStepsLandWithoutReload: the
// overview, in headless Chromium, shows a running rollout's traffic share
// move through the steps, pushed by the server (the page is never
// reloaded); the rollout page shows its steps and events; an unknown
// service is a 404 page; every answer carries the security headers.
func TestDashboardShowsTheWeightsChangeAsTheStepsLandWithoutReload(t *testing.T) {
	bin := chromium(t)
	e := newEnv(t, opts{bake: 2 * time.Second})
	e.given("v1")
	srv := httptest.NewServer((&dashboard.Server{Starter: e.starter, WebUI: "http://127.0.0.1:8233", Every: 200 * time.Millisecond}).Handler())
	// the pages' event streams stay open: close them, or Close waits for them
	defer func() { srv.CloseClientConnections(); srv.Close() }()
	ctx := browser(t, bin)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	key := e.svc.Name + "/test"
	if text, missing := pageText(ctx, 20*time.Second, e.svc.Name, "v1", "promoted"); missing != "" {
		t.Fatalf("the overview lacks %q:\n%s", missing, text)
	}
	evalString(t, ctx, `window.notReloaded = "yes"; "ok"`)

	gen := load.Start(e.url, 50, 2*time.Minute) // traffic for the analysis to measure
	run := e.start("v2")
	row := fmt.Sprintf(`(function(){ const r = document.querySelector('tr[data-key=%q]'); return r ? r.innerText : ""; })()`, key)
	seen := map[string]bool{}
	var order []string
	deadline := time.Now().Add(90 * time.Second)
	shot := false
	for time.Now().Before(deadline) {
		text := evalString(t, ctx, row)
		if strings.Contains(text, "v2") {
			for _, p := range []string{"10%", "25%", "50%", "75%"} {
				if strings.Contains(text, p) && strings.Contains(text, "shifting") && !seen[p] {
					seen[p] = true
					order = append(order, p)
				}
			}
			if seen["50%"] && !shot {
				screenshot(t, ctx, "dashboard-overview")
				shot = true
			}
			if strings.Contains(text, "promoted") {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(seen) < 3 {
		t.Fatalf("the overview showed the shares %v of v2 while it rolled out: want at least 3 of 10/25/50/75 %%; row now: %s", order, evalString(t, ctx, row))
	}
	if r := evalString(t, ctx, `window.notReloaded || "reloaded"`); r != "yes" {
		t.Fatal("the overview page was reloaded: the updates must be pushed into it")
	}
	if n := evalString(t, ctx, `document.body.dataset.updates || "0"`); n == "0" {
		t.Fatal("no server-sent update reached the page")
	}
	t.Logf("the overview showed v2's share go %v, then promoted, without a reload (%s pushed updates)", order, evalString(t, ctx, `document.body.dataset.updates`))
	if _, err := e.starter.Wait(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	requireNoFailures(t, gen.Stop(), 100)

	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/rollout/"+key)); err != nil {
		t.Fatal(err)
	}
	if text, missing := pageText(ctx, 20*time.Second, "v2", "promoted", "step 5 of 5", "Events", "step 3/5", "Temporal Web UI"); missing != "" {
		t.Fatalf("the rollout page lacks %q:\n%s", missing, text)
	}
	screenshot(t, ctx, "dashboard-rollout")
	// judged on HAProxy's counters, not Prometheus: each analysis is still a
	// measurement, charted per metric like any other source's
	pts := evalString(t, ctx, `(function(){ const f = document.querySelector('figure[data-metric="error-rate"]'); return f ? f.dataset.points : "none"; })()`)
	if n, _ := strconv.Atoi(pts); n < 3 {
		t.Fatalf("the counter-judged rollout's page charts %s error-rate measurements, want one per bake (≥ 3)", pts)
	}
	// at a phone's width nothing runs off the page sideways (wide tables scroll in their box)
	for _, path := range []string{"/", "/rollout/" + key, "/history"} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(srv.URL+path)); err != nil {
			t.Fatal(err)
		}
		if text, missing := pageText(ctx, 20*time.Second, "Switchyard", "History"); missing != "" {
			t.Fatalf("%s at a phone's width lacks %q:\n%s", path, missing, text)
		}
		if w := evalString(t, ctx, `String(document.documentElement.scrollWidth)`); w != "390" {
			t.Fatalf("%s at a phone's width (390 px) is %s px wide", path, w)
		}
	}
	screenshot(t, ctx, "dashboard-phone-history")

	resp, err := http.Get(srv.URL + "/rollout/no-such-service/test")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown service's page answered %s, want 404", resp.Status)
	}
	for _, h := range []struct{ name, want string }{{"X-Frame-Options", "DENY"}, {"X-Content-Type-Options", "nosniff"}, {"Content-Security-Policy", "frame-ancestors 'none'"}} {
		if got := resp.Header.Get(h.name); !strings.Contains(got, h.want) {
			t.Errorf("%s: %q, want %q", h.name, got, h.want)
		}
	}
}

// TestDashboardSaysWhenTemporalIsDownAndRecovers stops the Temporal server
// (`switchyard dev` on its SQLite file) under an open overview: the page
// says Temporal is unreachable, and shows the services again once it is back.
func TestDashboardSaysWhenTemporalIsDownAndRecovers(t *testing.T) {
	bin := chromium(t)
	d := startDevProc(t)
	e := newEnv(t, opts{address: d.hostPort, bake: 0, noBake: true, noWorker: true})
	startWorker(t, e)
	e.given("v1")
	srv := httptest.NewServer((&dashboard.Server{Starter: &starter.Starter{C: e.starter.C, TaskQueue: e.queue}, Every: 200 * time.Millisecond}).Handler())
	// the pages' event streams stay open: close them, or Close waits for them
	defer func() { srv.CloseClientConnections(); srv.Close() }()
	ctx := browser(t, bin)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	if text, missing := pageText(ctx, 20*time.Second, e.svc.Name, "promoted"); missing != "" {
		t.Fatalf("the overview lacks %q:\n%s", missing, text)
	}
	d.stop()
	if text, missing := pageText(ctx, 30*time.Second, "Temporal is unreachable"); missing != "" {
		t.Fatalf("with Temporal down the overview does not say so:\n%s", text)
	}
	screenshot(t, ctx, "dashboard-temporal-down")
	d.start()
	text, missing := pageText(ctx, 60*time.Second, e.svc.Name, "promoted")
	if missing != "" || strings.Contains(text, "unreachable") {
		t.Fatalf("after Temporal came back the overview did not recover:\n%s", text)
	}
}

const dashToken = "test-token-0123456789abcdef"

// waitPushed waits for a live page's first pushed update: the push swaps
// the live part's nodes, and a click on a node swapped out under it is lost.
func waitPushed(t *testing.T, ctx context.Context) {
	t.Helper()
	const js = `(function(){ const l = document.getElementById("live"); return l && l.dataset.events ? (document.body.dataset.updates || "0") : "static"; })()`
	for deadline := time.Now().Add(10 * time.Second); evalString(t, ctx, js) == "0"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the page got no pushed update in 10 s")
		}
	}
}

// signIn signs in from the page the browser shows, as a person would:
// the "Sign in to act" link, the name and the token, the button.
func signIn(t *testing.T, ctx context.Context, name, token string) {
	t.Helper()
	waitPushed(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`a[href^="/signin"]`)),
		chromedp.SendKeys(chromedp.CSS("#name"), name), chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin"))); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if text, missing := pageText(ctx, 10*time.Second, "signed in as "+name); missing != "" {
		t.Fatalf("after signing in the page does not say so:\n%s", text)
	}
}

// actFromThePage clicks an action's button on the page, gives the reason
// on the confirmation page and confirms; it returns the result page's text.
func actFromThePage(t *testing.T, ctx context.Context, do, reason, question string) string {
	t.Helper()
	waitPushed(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href^="/act?do=%s&"]`, do)))); err != nil {
		t.Fatalf("click %s: %v", do, err)
	}
	if text, missing := pageText(ctx, 10*time.Second, question, "Reason", "Cancel"); missing != "" {
		t.Fatalf("the confirmation of %s lacks %q:\n%s", do, missing, text)
	}
	screenshot(t, ctx, "dashboard-confirm-"+do)
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#reason"), reason), chromedp.Click(chromedp.CSS("#confirm"))); err != nil {
		t.Fatalf("confirm %s: %v", do, err)
	}
	text, missing := pageText(ctx, 60*time.Second, "Done:")
	if missing != "" {
		t.Fatalf("%s from the dashboard did not say it was done:\n%s", do, text)
	}
	return text
}

// TestDashboardAbortFromThePagePutsTrafficBackAndRecordsWhoAndWhy: a
// signed-in viewer aborts a rollout at 10 % from its page (confirmation,
// reason); HAProxy's weights are read back at 100 % on the stable slot, and
// the rollout records the reason and who did it. Signed out, the page shows
// no action. The history page shows the two rollouts and their figures.
func TestDashboardAbortFromThePagePutsTrafficBackAndRecordsWhoAndWhy(t *testing.T) {
	bin := chromium(t)
	e := newEnv(t, opts{bake: time.Minute})
	e.given("v1")
	srv := httptest.NewServer((&dashboard.Server{Starter: e.starter, Every: 200 * time.Millisecond, Token: dashToken}).Handler())
	defer func() { srv.CloseClientConnections(); srv.Close() }()
	run := e.start("v2")
	e.waitFor("step 1", func(st *starterStatus) bool { return st.Step == 0 && st.Weights.Of(st.Target) == 10 })
	ctx := browser(t, bin)
	page := srv.URL + "/rollout/" + e.svc.Name + "/test"
	if _, err := chromedp.Run(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	if text, missing := pageText(ctx, 20*time.Second, "step 1 of 5", "Sign in to act", "Traffic to v2"); missing != "" {
		t.Fatalf("the rollout page lacks %q:\n%s", missing, text)
	}
	if n := evalString(t, ctx, `String(document.querySelectorAll('a[href^="/act"]').length)`); n != "0" {
		t.Fatalf("signed out, the page shows %s action links", n)
	}
	signIn(t, ctx, "Ana Ops", dashToken)
	if text, missing := pageText(ctx, 10*time.Second, "Actions", "Pause", "Abort", "Skip this bake"); missing != "" {
		t.Fatalf("signed in, the rollout page lacks the action %q:\n%s", missing, text)
	}
	screenshot(t, ctx, "dashboard-rollout-actions")
	text := actFromThePage(t, ctx, "abort", "p99 up, seen on the dashboard", "Abort the rollout of "+e.svc.Name+" in test?")
	t.Logf("result page: %s", strings.Join(strings.Fields(text), " "))

	o, err := e.starter.Wait(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	if w := e.weights(); o.Status == nil || w.Of(o.Status.Stable) != 100 {
		t.Fatalf("after the abort HAProxy's weights are %s (stable slot %v)", w, o.Status)
	}
	if o.Kind != workflows.ErrRolledBack || !strings.Contains(o.Reason, "p99 up, seen on the dashboard") {
		t.Fatalf("the rollout ended %q: %s; want rolled back with the reason", o.Kind, o.Reason)
	}
	if o.Status.Rollback == nil || o.Status.Rollback.By != "Ana Ops (dashboard)" {
		t.Fatalf("the rollback does not record who: %+v", o.Status.Rollback)
	}
	t.Logf("HAProxy: %s; the rollout: %s, by %s", e.weights(), o.Reason, o.Status.Rollback.By)

	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/history?service="+e.svc.Name+"&env=test")); err != nil {
		t.Fatal(err)
	}
	if text, missing := pageText(ctx, 20*time.Second, "Figures", "50% of 2", "Runs", "rolled-back", "promoted"); missing != "" {
		t.Fatalf("the history page lacks %q:\n%s", missing, text)
	}
	if n := evalString(t, ctx, `String(document.querySelectorAll('table.runs tbody tr').length)`); n != "2" {
		t.Fatalf("the history page lists %s runs, want 2", n)
	}
	screenshot(t, ctx, "dashboard-history")
}

// TestDashboardActionsAreRefusedWithoutTheTokenOrTheFormsCSRFToken, over
// plain HTTP: read-only (no token) and signed-out pages have no actions and
// refuse them (403); a wrong token signs nobody in; a signed-in POST
// without the form's CSRF token, with a wrong one, or from another site is
// refused, and one without a reason is a 400 naming the field — and none
// of them touched the rollout. A pause with the token is recorded with who
// and why. Our own monitor's security check passes on the dashboard.
func TestDashboardActionsAreRefusedWithoutTheTokenOrTheFormsCSRFToken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	e := newEnv(t, opts{bake: time.Minute, extra: fmt.Sprintf(`monitor:
  endpoints:
    - {name: dashboard, url: %q, status: 200}
    - {name: dashboard-history, url: %q, status: 200}
  performance: {requests: 10}
  security: {headers: [Content-Security-Policy, X-Frame-Options, X-Content-Type-Options, Referrer-Policy]}`, base+"/", base+"/history")})
	rw := &http.Server{Handler: (&dashboard.Server{Starter: e.starter, Token: dashToken}).Handler()}
	go func() { _ = rw.Serve(l) }()
	defer rw.Close()
	ro := httptest.NewServer((&dashboard.Server{Starter: e.starter}).Handler())
	defer func() { ro.CloseClientConnections(); ro.Close() }()
	e.given("v1")
	run := e.start("v2")
	e.waitFor("step 1", func(st *starterStatus) bool { return st.Step == 0 && st.Weights.Of(st.Target) == 10 })
	page := "/rollout/" + e.svc.Name + "/test"
	abort := url.Values{"do": {"abort"}, "service": {e.svc.Name}, "env": {"test"}, "reason": {"should not happen"}}

	pc := pageClient{t}
	pc.readOnlyAndSignedOutRefuse(ro.URL, base, page, abort)
	user, csrf := pc.signedInNeedsTheCSRFToken(base, page, e.svc.Name, abort)
	st, err := e.starter.Status(context.Background(), e.svc.Name, "test")
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase.Done() || st.Paused || e.weights().Of(st.Target) != 10 {
		t.Fatalf("a refused request changed the rollout: %s, paused %v, %s", st.Phase, st.Paused, e.weights())
	}
	code, body := pc.post(user, base+"/act", url.Values{"csrf": {csrf}, "do": {"pause"}, "service": {e.svc.Name}, "env": {"test"}, "reason": {"waiting for the on-call"}})
	pc.want("pause from the dashboard", code, body, 200, "Done: the rollout is shifting (paused)")
	st, _ = e.starter.Status(context.Background(), e.svc.Name, "test")
	if last := st.Events[len(st.Events)-1].Message; last != "paused by Bo Ops (dashboard): waiting for the on-call" {
		t.Fatalf("the pause is recorded as %q", last)
	}

	monitorDashboard(t, e)
	if _, err := e.starter.Control(context.Background(), e.svc.Name, "test", workflows.Abort, workflows.AbortRequest{Reason: "test over"}); err != nil {
		t.Fatal(err)
	}
	_, _ = e.starter.Wait(context.Background(), run)
}

// pageClient reads and posts the dashboard's pages as a browser would.
type pageClient struct{ t *testing.T }

func (pc pageClient) get(c *http.Client, u string) (int, string) {
	pc.t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		pc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (pc pageClient) post(c *http.Client, u string, form url.Values, header ...string) (int, string) {
	pc.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		pc.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (pc pageClient) want(what string, code int, body string, wantCode int, wantText string) {
	pc.t.Helper()
	if code != wantCode || !strings.Contains(body, wantText) {
		pc.t.Fatalf("%s: %d, want %d with %q:\n%s", what, code, wantCode, wantText, body)
	}
	pc.t.Logf("%s: %d (%s)", what, code, wantText)
}

// readOnlyAndSignedOutRefuse: a dashboard without a token shows no action
// and refuses every one; a signed-out visitor of one with a token too.
func (pc pageClient) readOnlyAndSignedOutRefuse(ro, base, page string, abort url.Values) {
	t := pc.t
	anon := &http.Client{}
	code, body := pc.get(anon, ro+page)
	pc.want("read-only dashboard, rollout page", code, body, 200, "read-only")
	if strings.Contains(body, "/act?") {
		t.Fatalf("the read-only dashboard shows actions:\n%s", body)
	}
	code, body = pc.get(anon, ro+"/act?do=abort&service="+abort.Get("service")+"&env=test")
	pc.want("read-only dashboard, confirmation page", code, body, 403, "read-only")
	code, body = pc.post(anon, ro+"/act", abort)
	pc.want("read-only dashboard, POST /act", code, body, 403, "read-only")
	code, body = pc.post(anon, ro+"/signin", url.Values{"name": {"x"}, "token": {dashToken}})
	pc.want("read-only dashboard, sign in", code, body, 403, "read-only")

	code, body = pc.get(anon, base+page)
	pc.want("signed out, rollout page", code, body, 200, "Sign in to act")
	if strings.Contains(body, "/act?") {
		t.Fatalf("signed out, the page shows actions:\n%s", body)
	}
	code, body = pc.post(anon, base+"/act", abort)
	pc.want("signed out, POST /act", code, body, 403, "sign in to act")

}

// signedInNeedsTheCSRFToken: a wrong token gets no session; a session acts
// only with its form's CSRF token, from this site, with a reason, for a
// known action. It returns the signed-in client and its token.
func (pc pageClient) signedInNeedsTheCSRFToken(base, page, service string, abort url.Values) (*http.Client, string) {
	t := pc.t
	jar, _ := cookiejar.New(nil)
	user := &http.Client{Jar: jar}
	code, body := pc.post(user, base+"/signin", url.Values{"name": {"Mallory"}, "token": {"not-the-token-at-all"}, "next": {"/"}})
	pc.want("sign in with a wrong token", code, body, 403, "token: not the dashboard")
	if u, _ := url.Parse(base); len(jar.Cookies(u)) != 0 {
		t.Fatal("a wrong token got a session cookie")
	}
	code, body = pc.post(user, base+"/signin", url.Values{"name": {"Bo Ops"}, "token": {dashToken}, "next": {page}})
	pc.want("sign in", code, body, 200, "signed in as <strong>Bo Ops</strong>")
	if !strings.Contains(body, "/act?do=abort") {
		t.Fatalf("signed in, the rollout page has no abort action:\n%s", body)
	}
	code, body = pc.post(user, base+"/act", abort)
	pc.want("signed in, POST /act without the CSRF token", code, body, 403, "CSRF token is missing or wrong")
	bad := url.Values{"csrf": {"forged"}}
	for k, v := range abort {
		bad[k] = v
	}
	code, body = pc.post(user, base+"/act", bad)
	pc.want("signed in, POST /act with a forged CSRF token", code, body, 403, "CSRF token is missing or wrong")

	code, body = pc.get(user, base+"/act?do=pause&service="+service+"&env=test")
	pc.want("confirmation page", code, body, 200, "Pause the rollout of "+service+" in test?")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the confirmation page has no CSRF token:\n%s", body)
	}
	csrf := m[1]
	good := url.Values{"csrf": {csrf}}
	for k, v := range abort {
		good[k] = v
	}
	code, body = pc.post(user, base+"/act", good, "Sec-Fetch-Site", "cross-site")
	pc.want("signed in, POST /act from another site", code, body, 403, "CSRF token is missing or wrong")
	good.Set("reason", "  ")
	code, body = pc.post(user, base+"/act", good)
	pc.want("abort without a reason", code, body, 400, "reason: say why")
	good.Set("do", "explode")
	code, body = pc.post(user, base+"/act", good)
	pc.want("an unknown action", code, body, 400, `do &#34;explode&#34;: not an action`)

	return user, csrf
}

// monitorDashboard: the service's monitoring checks the dashboard itself
// (its pages answer, its security headers are set).
func monitorDashboard(t *testing.T, e *env) {
	mon, err := e.starter.RunMonitor(context.Background(), e.svc)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range mon.Results {
		if strings.HasPrefix(r.Name, "security:") || strings.HasPrefix(r.Name, "health:") {
			n++
			if !r.Passed {
				t.Fatalf("the monitor's %s check failed on the dashboard: %s", r.Name, r.Detail)
			}
			t.Logf("monitor %s: passed (%s)", r.Name, r.Detail)
		}
	}
	if n != 4 {
		t.Fatalf("the monitor ran %d health and security checks on the dashboard, want 4: %+v", n, mon.Results)
	}
}

// TestDashboardReleasePageShowsEachEnvironmentsServicesAndApprovesFromIt:
// a release of a backend and a frontend (after it) waits for production's
// approval; its page shows each environment's services by dependency level
// with their states and the approval waiting with its deadline; an approval
// from the page lets it through and is recorded with who. A freeze from the
// page shows on the overview, and an unfreeze from the page ends it.
func TestDashboardReleasePageShowsEachEnvironmentsServicesAndApprovesFromIt(t *testing.T) {
	bin := chromium(t)
	e := newReleaseEnv(t, "    approval: {required: true, timeout: 10m, onTimeout: abort}\n")
	name := e.release().Name
	run, err := e.starter.StartRelease(context.Background(), e.release(), map[string]string{e.svc("backend"): "v1", e.svc("frontend"): "v1"}, "", "test", starter.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.waitPhase(workflows.ReleaseAwaitingApproval)
	srv := httptest.NewServer((&dashboard.Server{Starter: e.starter, Every: 200 * time.Millisecond, Token: dashToken}).Handler())
	defer func() { srv.CloseClientConnections(); srv.Close() }()
	ctx := browser(t, bin)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/release/"+name)); err != nil {
		t.Fatal(err)
	}
	if text, missing := pageText(ctx, 20*time.Second, "awaiting-approval", "staging", "production", "Approval: waiting, deadline",
		e.svc("backend"), e.svc("frontend"), "after "+e.svc("backend"), "done", "pending"); missing != "" {
		t.Fatalf("the release page lacks %q:\n%s", missing, text)
	}
	// per environment: two levels, the backend first, the frontend after it
	for _, env := range []string{"staging", "production"} {
		got := evalString(t, ctx, fmt.Sprintf(`Array.from(document.querySelectorAll('section[aria-label=%q] li.level'), l => Array.from(l.querySelectorAll('li.node'), n => n.dataset.service + ":" + n.querySelector('.state').textContent).join(",")).join(" | ")`, env))
		phase := "done"
		if env == "production" {
			phase = "pending"
		}
		if want := fmt.Sprintf("%s:%s | %s:%s", e.svc("backend"), phase, e.svc("frontend"), phase); got != want {
			t.Fatalf("%s's services by level: %q, want %q", env, got, want)
		}
	}
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/release/"+name)); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, "Rel Ops", dashToken)
	screenshot(t, ctx, "dashboard-release")
	actFromThePage(t, ctx, "approve", "staging looked fine", "Approve release "+name)
	wctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	st, err := e.starter.WaitRelease(wctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != workflows.ReleasePromoted || len(st.Approvals) == 0 || st.Approvals[len(st.Approvals)-1].By != "Rel Ops (dashboard)" {
		t.Fatalf("after the approval from the page: %s, approvals %+v", st.Phase, st.Approvals)
	}
	t.Logf("release %s: %s; approval %+v", name, st.Phase, st.Approvals[len(st.Approvals)-1])

	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/release/"+name)); err != nil {
		t.Fatal(err)
	}
	actFromThePage(t, ctx, "freeze", "change freeze for the sale", "Freeze release "+name)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	if text, missing := pageText(ctx, 20*time.Second, "Releases", "frozen by Rel Ops (dashboard): change freeze for the sale", "frozen ("+name+")"); missing != "" {
		t.Fatalf("the overview does not show the freeze (%q):\n%s", missing, text)
	}
	screenshot(t, ctx, "dashboard-overview-frozen")
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/release/"+name)); err != nil {
		t.Fatal(err)
	}
	actFromThePage(t, ctx, "unfreeze", "sale over", "Unfreeze release "+name)
	if f, frozen := e.starter.Frozen(context.Background(), name); frozen {
		t.Fatalf("still frozen after the unfreeze from the page: %+v", f)
	}
}
