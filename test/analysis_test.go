package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/internal/dashboard"
	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/workflows"
)

// daemon is a process a test started (Prometheus, Alertmanager).
type daemon struct {
	addr string
	cmd  *exec.Cmd
}

// stop kills the process (ours, by PID) and waits for it.
func (d *daemon) stop() {
	if d.cmd.Process != nil && d.cmd.ProcessState == nil {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		_ = d.cmd.Wait()
	}
}

// startDaemon runs bin with args on 127.0.0.1:port and waits for path to answer 200.
func startDaemon(t testing.TB, bin string, port int, path string, args ...string) *daemon {
	t.Helper()
	exe, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install prometheus prometheus-alertmanager; .ci/run does)", bin)
	}
	d := &daemon{addr: fmt.Sprintf("127.0.0.1:%d", port)}
	log, err := os.Create(filepath.Join(t.TempDir(), bin+".log"))
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(exe, args...)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get("http://" + d.addr + path); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d
			}
		}
	}
	out, _ := os.ReadFile(log.Name())
	t.Fatalf("%s did not become ready on %s:\n%s", bin, d.addr, out)
	return nil
}

// prometheus is a real Prometheus scraping every second the slots that
// Switchyard lists in its file_sd targets file.
type prometheus struct {
	*daemon
	targets string
	port    int
	args    []string
}

func startPrometheus(t testing.TB) *prometheus {
	t.Helper()
	dir := t.TempDir()
	p := &prometheus{targets: filepath.Join(dir, "targets", "switchyard.json"), port: freePort(t)}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}
scrape_configs:
  - job_name: switchyard
    file_sd_configs: [{files: [%q], refresh_interval: 1s}]
`, p.targets)), 0o644); err != nil {
		t.Fatal(err)
	}
	p.args = []string{"--config.file=" + cfg, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", p.port)}
	p.daemon = startDaemon(t, "prometheus", p.port, "/-/ready", p.args...)
	return p
}

// analysisYAML is a rollout.analysis block judged only by Prometheus.
func (p *prometheus) analysisYAML(interval string, metrics string) string {
	return fmt.Sprintf(`
    interval: %s
    prometheus: {address: 'http://%s', targetsFile: %q, step: 1s, retries: 1}
    metrics:
%s`, interval, p.addr, p.targets, metrics)
}

const (
	errorRateQuery = `sum(rate(http_requests_total{service="{{service}}",slot="{{slot}}",code=~"5.."}[{{interval}}])) / sum(rate(http_requests_total{service="{{service}}",slot="{{slot}}"}[{{interval}}]))`
	p99Query       = `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{service="{{service}}",slot="{{slot}}"}[{{interval}}])))`
)

// statusJSON reads `switchyard status -o json` as a user would.
func statusJSON(t *testing.T, e *env) *workflows.Status {
	t.Helper()
	out, code := cli(t, e, "status", e.svc.Name, "--env", "test", "-o", "json")
	if code != 0 {
		t.Fatalf("status -o json: exit %d\n%s", code, out)
	}
	var doc struct {
		Deployment *workflows.Status `json:"deployment"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Deployment == nil {
		t.Fatalf("status -o json has no deployment status: %v\n%s", err, out)
	}
	return doc.Deployment
}

// lastMeasurement is the newest measurement of a metric.
func lastMeasurement(t *testing.T, st *workflows.Status, metric string) workflows.Measured {
	t.Helper()
	return measurementBelow(t, st, metric, 101)
}

// measurementBelow is the newest measurement of a metric taken while the
// new slot had less than weight % of traffic.
func measurementBelow(t *testing.T, st *workflows.Status, metric string, weight int) workflows.Measured {
	t.Helper()
	for i := len(st.Measurements) - 1; i >= 0; i-- {
		if st.Measurements[i].Metric == metric && st.Measurements[i].Weight < weight {
			return st.Measurements[i]
		}
	}
	t.Fatalf("no measurement of %s in the status: %+v", metric, st.Measurements)
	return workflows.Measured{}
}

func value(p *float64) float64 {
	if p == nil {
		return -1
	}
	return *p
}

// A rollout judged only by Prometheus queries: a version as fast as the
// live one is promoted; one whose p99 doubles (40 ms of latency instead of
// 10 ms) is rolled back by the Mann-Whitney judge, with the values in
// `status -o json`.
func TestPrometheusQueriesPromoteAGoodVersionAndRollBackOneWhoseP99Doubles(t *testing.T) {
	prom := startPrometheus(t)
	e := newEnv(t, opts{steps: []int{50, 100}, bake: 12 * time.Second, analysis: prom.analysisYAML("12s", fmt.Sprintf(`
      - {name: error-rate, query: '%s', max: 0.01}
      - name: p99
        query: '%s'
        judge: {kind: mann-whitney, confidence: 0.98, direction: increase, allowedIncrease: 1.2}
`, errorRateQuery, p99Query))})
	e.given("v1-lat10")
	gen := load.Start(e.url, 100, 4*time.Minute)
	defer gen.Stop()
	e.given("v2-lat10")
	st := statusJSON(t, e)
	if testing.Verbose() {
		out, _ := cli(t, e, "status", e.svc.Name, "--env", "test")
		t.Logf("status:\n%s", out)
	}
	p99 := measurementBelow(t, st, "p99", 100)
	t.Logf("v2: p99 %s: value %.4f, live %.4f: %s", p99.Decision, value(p99.Value), value(p99.Baseline), p99.Reason)
	if p99.Decision != rollout.Pass || p99.Value == nil || p99.Baseline == nil || !strings.Contains(p99.Query, `slot="`+string(st.Target)+`"`) {
		t.Fatalf("v2's p99 measurement: %+v", p99)
	}
	if er := lastMeasurement(t, st, "error-rate"); er.Decision != rollout.Pass || er.Threshold != "≤ 0.01" {
		t.Fatalf("v2's error-rate measurement: %+v", er)
	}

	o := e.deploy("v3-lat40")
	if o.Kind != workflows.ErrRolledBack || !strings.Contains(o.Reason, "p99: fail") {
		t.Fatalf("v3 (p99 doubled): %s %s, want rolled back by the p99 judge", o.Kind, o.Reason)
	}
	st = statusJSON(t, e)
	p99 = lastMeasurement(t, st, "p99")
	t.Logf("v3: p99 %s: value %.4f, live %.4f: %s", p99.Decision, value(p99.Value), value(p99.Baseline), p99.Reason)
	if p99.Decision != rollout.Fail || value(p99.Value) < 1.5*value(p99.Baseline) || len(p99.Points) != 2 || p99.Points[0] < 3 {
		t.Fatalf("v3's p99 measurement: %+v", p99)
	}
	if w := e.weights(); w.Of(st.Stable) != 100 {
		t.Fatalf("after the rollback: %s", w)
	}
	res := gen.Stop()
	requireNoFailures(t, res, 1000)
}

// Compared with the live slot: when the live version itself errs at 2 %, a
// new version with the same rate is promoted (a fixed max of 1 % would have
// failed it: its measured rate is in the status), and one that adds 3 % is
// rolled back.
func TestABaselineCompareJudgesAgainstTheLiveSlotsOwnErrorRate(t *testing.T) {
	prom := startPrometheus(t)
	e := newEnv(t, opts{steps: []int{50, 100}, bake: 12 * time.Second, analysis: prom.analysisYAML("12s", fmt.Sprintf(`
      - {name: error-rate, query: '%s', compare: {to: baseline, maxIncrease: 0.015}}
    earlyStop: {disabled: true}
`, errorRateQuery))})
	e.given("v1-err2")
	gen := load.Start(e.url, 100, 3*time.Minute)
	defer gen.Stop()
	e.given("v2-err2")
	er := measurementBelow(t, statusJSON(t, e), "error-rate", 100)
	t.Logf("v2 at 50%%: %s", er.Measurement)
	if er.Decision != rollout.Pass || value(er.Value) <= 0.01 || value(er.Baseline) <= 0.01 {
		t.Fatalf("v2's error-rate measurement should pass with a value over 1%% (both slots err at 2%%): %+v", er)
	}
	o := e.deploy("v3-err5")
	if o.Kind != workflows.ErrRolledBack || !strings.Contains(o.Reason, "error-rate: fail") {
		t.Fatalf("v3 (5%% errors vs 2%%): %s %s, want rolled back by the compare", o.Kind, o.Reason)
	}
	st := statusJSON(t, e)
	er = lastMeasurement(t, st, "error-rate")
	t.Logf("v3: %s", er.Measurement)
	if value(er.Value)-value(er.Baseline) < 0.015 {
		t.Fatalf("v3's measurement: %+v", er)
	}
	gen.Stop()
	requireDashboardCharts(t, e, st, "error-rate")
}

// requireDashboardCharts opens the rollout's dashboard page in headless
// Chromium and checks the metric's chart: a point per measurement with a
// value (each titled with it), the live slot's line, the limit drawn
// dashed, and the failed measurement marked with a cross.
func requireDashboardCharts(t *testing.T, e *env, st *workflows.Status, metric string) {
	t.Helper()
	bin := chromium(t)
	srv := httptest.NewServer((&dashboard.Server{Starter: e.starter}).Handler())
	defer func() { srv.CloseClientConnections(); srv.Close() }()
	ctx := browser(t, bin)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/rollout/"+e.svc.Name+"/test")); err != nil {
		t.Fatal(err)
	}
	if text, missing := pageText(ctx, 20*time.Second, "Analysis", metric, "Traffic to "+st.Version); missing != "" {
		t.Fatalf("the rollout page lacks %q:\n%s", missing, text)
	}
	want, failed := 0, 0
	var last float64
	for _, m := range st.Measurements {
		if m.Metric == metric && m.Value != nil {
			want++
			last = *m.Value
			if m.Decision == rollout.Fail {
				failed++
			}
		}
	}
	fig := fmt.Sprintf(`figure[data-metric=%q]`, metric)
	count := func(sel string) string {
		return evalString(t, ctx, fmt.Sprintf(`String(document.querySelectorAll(%q).length)`, fig+" "+sel))
	}
	if got := count("svg circle.pt.new"); got != fmt.Sprint(want) {
		t.Fatalf("the %s chart draws %s points of the new slot, want %d (one per measurement)", metric, got, want)
	}
	if got := count("svg path.line.limit"); got != "1" {
		t.Fatalf("the %s chart has %s limit lines, want 1", metric, got)
	}
	if got := count("svg path.line.live"); got != "1" {
		t.Fatalf("the %s chart has %s lines of the live slot, want 1", metric, got)
	}
	if got := count("svg path.cross"); got != fmt.Sprint(failed) || failed == 0 {
		t.Fatalf("the %s chart marks %s failed points, want %d (and at least 1)", metric, got, failed)
	}
	titles := evalString(t, ctx, fmt.Sprintf(`Array.from(document.querySelectorAll(%q), c => c.textContent).join("\n")`, fig+" svg circle.pt.new title"))
	if !strings.Contains(titles, fmt.Sprintf("new %.4g, fail", last)) {
		t.Fatalf("the last point's title does not give its value %.4g and decision:\n%s", last, titles)
	}
	screenshot(t, ctx, "dashboard-analysis")
	t.Logf("the dashboard's %s chart: %d points (%d failed, crossed), the live slot's line, the limit", metric, want, failed)
}

// A query with a wrong metric name returns no series: each onNoData does
// what it says; inconclusive pauses the rollout and alerts (to a real
// Alertmanager), and resume goes on.
func TestNoDataDoesWhatOnNoDataSays(t *testing.T) {
	prom := startPrometheus(t)
	am := startAlertmanager(t)
	typo := `sum(rate(http_requets_total{service="{{service}}",slot="{{slot}}"}[{{interval}}]))`
	for _, c := range []struct {
		name, query, onNoData, want string
		bake                        time.Duration
	}{
		{"pass", typo, "pass", "promoted", 3 * time.Second},
		{"fail", typo, "fail", "rolled-back", 3 * time.Second},
		{"inconclusive", typo, "inconclusive", "paused", 3 * time.Second},
		// one series per status code, not one number (a bake long enough
		// for Prometheus to have scraped the new slot: see the README)
		{"several-series-fail", `rate(http_requests_total{service="{{service}}",slot="{{slot}}"}[{{interval}}])`, "fail", "rolled-back-series", 12 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, opts{steps: []int{50, 100}, bake: c.bake, analysis: prom.analysisYAML(c.bake.String(), fmt.Sprintf(`
      - {name: typo, query: '%s', max: 100, onNoData: %s}
`, c.query, c.onNoData)), extra: fmt.Sprintf("alerts:\n  - {kind: alertmanager, url: 'http://%s'}", am.addr)})
			e.given("v1")
			switch c.want {
			case "promoted":
				e.given("v2")
			case "rolled-back":
				o := e.deploy("v2")
				if o.Kind != workflows.ErrRolledBack || !strings.Contains(o.Reason, "no data: the query returned no series") {
					t.Fatalf("onNoData fail: %s %s", o.Kind, o.Reason)
				}
			case "rolled-back-series":
				gen := load.Start(e.url, 50, time.Minute)
				o := e.deploy("v2")
				gen.Stop()
				if o.Kind != workflows.ErrRolledBack || !strings.Contains(o.Reason, "series, not one (aggregate it") {
					t.Fatalf("several series, onNoData fail: %s %s", o.Kind, o.Reason)
				}
			case "paused":
				run := e.start("v2")
				for i := range 2 { // at 50 %, then at 100 %
					e.waitFor("paused by an inconclusive analysis", func(st *starterStatus) bool { return st.Paused })
					st := statusJSON(t, e)
					m := lastMeasurement(t, st, "typo")
					if m.Decision != rollout.Inconclusive || !strings.Contains(m.Reason, "no series") {
						t.Fatalf("measurement: %+v", m)
					}
					if !strings.Contains(st.Events[len(st.Events)-1].Message, "analysis inconclusive at") {
						t.Fatalf("last event: %s", st.Events[len(st.Events)-1].Message)
					}
					alerts := am.alerts(t, e.svc.Name)
					if len(alerts) != 1 || alerts[0].Labels["check"] != "analysis" || !strings.Contains(alerts[0].Annotations["summary"], "inconclusive") {
						t.Fatalf("alertmanager has %+v, want the inconclusive analysis", alerts)
					}
					// the first resume as an older CLI sends it (no request), the second saying who and why
					var req any
					if i == 1 {
						req = workflows.ControlRequest{By: "tester", Reason: "checked by hand"}
					}
					st, err := e.starter.Control(context.Background(), e.svc.Name, "test", workflows.Resume, req)
					if err != nil {
						t.Fatal(err)
					}
					if want := map[int]string{0: "resumed", 1: "resumed by tester: checked by hand"}[i]; st.Events[len(st.Events)-1].Message != want {
						t.Fatalf("the resume is recorded as %q, want %q", st.Events[len(st.Events)-1].Message, want)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				o, err := e.starter.Wait(ctx, run)
				if err != nil || o.Kind != "" {
					t.Fatalf("after resume: %v %+v", err, o)
				}
				record(t, history(t, e, run), "deployment_inconclusive_paused_then_resumed_by_whom.json")
			}
		})
	}
}

// Prometheus stopped in the middle of a bake: the measurements are errors
// (after bounded retries), the analysis inconclusive, the rollout paused —
// never promoted on missing data; abort rolls it back.
func TestPrometheusDownMidBakeIsNeverAPass(t *testing.T) {
	prom := startPrometheus(t)
	e := newEnv(t, opts{steps: []int{50, 100}, bake: 4 * time.Second, analysis: prom.analysisYAML("4s", fmt.Sprintf(`
      - {name: error-rate, query: '%s', max: 0.01}
`, errorRateQuery))})
	e.given("v1")
	gen := load.Start(e.url, 50, 2*time.Minute)
	defer gen.Stop()
	run := e.start("v2")
	e.waitFor("step 1 baking", func(st *starterStatus) bool { return !st.BakeEndsAt.IsZero() })
	prom.stop()
	e.waitFor("paused", func(st *starterStatus) bool { return st.Paused || st.Phase.Done() })
	st := statusJSON(t, e)
	m := lastMeasurement(t, st, "error-rate")
	t.Logf("with Prometheus down: %s", m.Measurement)
	if st.Phase.Done() || m.Decision != rollout.Error || !strings.Contains(m.Reason, "unreachable") {
		t.Fatalf("phase %s, measurement %+v: want paused on an error measurement", st.Phase, m)
	}
	time.Sleep(2 * time.Second)
	if st := statusJSON(t, e); !st.Paused || st.Traffic() != 50 {
		t.Fatalf("after 2 s more: paused %v at %d%%", st.Paused, st.Traffic())
	}
	if _, err := e.starter.Control(context.Background(), e.svc.Name, "test", workflows.Abort, workflows.AbortRequest{Reason: "prometheus is down", By: "test"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if o, err := e.starter.Wait(ctx, run); err != nil || o.Kind != workflows.ErrRolledBack {
		t.Fatalf("after abort: %v %+v", err, o)
	}
	requireNoFailures(t, gen.Stop(), 100)
}

// Early stop under 500 req/s: a version failing 10 % of requests at 10 %
// of the traffic is rolled back by the sequential test within a second of
// its first request, long before the 10 s bake ends; a good version under
// the same settings is promoted.
func TestEarlyStopRollsBackABadVersionWithinASecond(t *testing.T) {
	e := newEnv(t, opts{steps: []int{10, 100}, bake: 10 * time.Second, analysis: "{interval: 10s, maxErrorRate: 0.05}"})
	e.given("v1")
	gen := load.Start(e.url, 500, 2*time.Minute)
	defer gen.Stop()
	time.Sleep(500 * time.Millisecond)
	run := e.start("v2-err10")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, err := e.starter.Wait(ctx, run)
	res := gen.Stop()
	if err != nil {
		t.Fatal(err)
	}
	record(t, history(t, e, run), "deployment_rolled_back_by_early_stop.json")
	if o.Kind != workflows.ErrRolledBack || !strings.Contains(o.Reason, "early stop") {
		t.Fatalf("v2-err10: %s %s, want rolled back by the early stop", o.Kind, o.Reason)
	}
	first, ok := res.FirstByVersion["v2-err10"]
	rb := o.Status.Rollback
	if !ok || rb == nil {
		t.Fatalf("no request reached v2-err10 (%s) or no rollback report", res)
	}
	took := rb.EndedAt.Sub(first)
	failed := 0
	for _, f := range res.Failures {
		if f.Version == "v2-err10" {
			failed++
		}
	}
	t.Logf("early stop: 100%% back on the stable slot %s after the first request to v2-err10; %d requests failed (all v2-err10's own 500s: %d); load %s; %s",
		took.Round(time.Millisecond), res.Failed, failed, res, o.Reason)
	if took > time.Second {
		t.Errorf("rolled back %s after the bad version's first request, want ≤ 1s", took)
	}
	if failed != res.Failed {
		t.Errorf("%d failures did not come from the bad version: %+v", res.Failed-failed, res.Failures)
	}

	gen = load.Start(e.url, 500, 2*time.Minute)
	if o := e.deploy("v4"); o.Kind != "" { // v3 is the bad build (harness_test.go)
		t.Fatalf("a good version under early stop: %s %s", o.Kind, o.Reason)
	}
	requireNoFailures(t, gen.Stop(), 5000)
}

// alertmanager is a real Prometheus Alertmanager, clustering off.
type alertmanager struct{ *daemon }

func startAlertmanager(t *testing.T) *alertmanager {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route: {receiver: 'null', group_wait: 1s}\nreceivers: [{name: 'null'}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	return &alertmanager{startDaemon(t, "prometheus-alertmanager", port, "/-/ready", "--config.file="+cfg,
		"--storage.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--cluster.listen-address=")}
}

type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// alerts are the service's active alerts, read back through the API v2.
func (a *alertmanager) alerts(t *testing.T, service string) []amAlert {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s/api/v2/alerts?filter=%s", a.addr, "service%3D%22"+service+"%22"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []amAlert
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("alertmanager: %v: %s", err, b)
	}
	return out
}

// The Alertmanager channel: a monitoring incident is an alert there while
// the check fails and is resolved when it passes again.
func TestAlertmanagerReceivesAnIncidentAndItResolves(t *testing.T) {
	am := startAlertmanager(t)
	e := newEnv(t, opts{router: "embedded", extra: fmt.Sprintf("alerts:\n  - {kind: alertmanager, url: 'http://%s'}", am.addr)})
	e.given("v1")
	live := fmt.Sprintf("http://127.0.0.1:%d", e.svc.Run.Ports.Blue)
	if _, err := http.Get(live + "/admin/fail?health=1"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.starter.RunMonitor(ctx, e.svc); err != nil {
		t.Fatal(err)
	}
	alerts := am.alerts(t, e.svc.Name)
	if len(alerts) == 0 || alerts[0].Labels["alertname"] != "Switchyard" || alerts[0].Labels["environment"] != "test" {
		t.Fatalf("alertmanager has %+v, want the incident", alerts)
	}
	t.Logf("firing: %d alert(s), first %v %q", len(alerts), alerts[0].Labels, alerts[0].Annotations["summary"])
	if _, err := http.Get(live + "/admin/fail?health=0"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.starter.RunMonitor(ctx, e.svc); err != nil {
		t.Fatal(err)
	}
	if alerts := am.alerts(t, e.svc.Name); len(alerts) != 0 {
		t.Fatalf("after the fix alertmanager still has %+v", alerts)
	}
}
