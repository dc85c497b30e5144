package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/internal/alert"
	"github.com/switchyard/switchyard/internal/incident"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/worker"
	"github.com/switchyard/switchyard/workflows"
)

// hookReceiver is a real webhook endpoint on 127.0.0.1 that checks the
// signature of every call and records its action.
type hookReceiver struct {
	*httptest.Server
	mu      sync.Mutex
	actions []string
	keys    []string
	badSigs int
}

func newHookReceiver(t *testing.T, key string) *hookReceiver {
	h := &hookReceiver{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body alert.WebhookBody
		_ = json.Unmarshal(b, &body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if r.Header.Get("X-Switchyard-Signature") != alert.Sign([]byte(key), b) {
			h.badSigs++
		}
		h.actions = append(h.actions, string(body.Action))
		h.keys = append(h.keys, body.Incident.Key)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookReceiver) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.actions...)
}

func (h *hookReceiver) waitFor(t *testing.T, action string, n int) {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c := 0
		for _, a := range h.seen() {
			if a == action {
				c++
			}
		}
		if c >= n {
			return
		}
	}
	t.Fatalf("webhook never got %d %q; got %v", n, action, h.seen())
}

func metric(t *testing.T, body, name string, labels ...string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if ok {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			return v
		}
	}
	t.Fatalf("no %s%v in /metrics:\n%s", name, labels, regexp.MustCompile(`(?m)^switchyard.*$`).FindAllString(body, -1))
	return 0
}

func TestMonitoringOpensOneIncidentAndResolvesItAfterTheFix(t *testing.T) {
	hook := newHookReceiver(t, "hook-key")
	t.Setenv("MON_HOOK_KEY", "hook-key")
	t.Setenv("MON_SLACK_URL", fmt.Sprintf("http://127.0.0.1:%d/services/down", freePort(t))) // nothing listens: a channel that is down
	e := newEnv(t, opts{router: "embedded", noWorker: true, extra: fmt.Sprintf(`monitor:
  every: 1s
  security: {headers: [X-Content-Type-Options, X-Frame-Options]}
alerts:
  - {kind: webhook, url: %q, secretEnv: MON_HOOK_KEY}
  - {kind: slack, urlEnv: MON_SLACK_URL}`, hook.URL+"/incidents")})
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	mh, stop, err := worker.ServeMetrics(metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c, err := client.Dial(client.Options{HostPort: server.HostPort, Logger: quiet{}, MetricsHandler: mh})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := worker.New(c, worker.Config{TaskQueue: e.queue, StateDir: filepath.Join(t.TempDir(), "state"), Embedded: embedded})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	e.given("v1")
	ctx := context.Background()
	for _, want := range []string{"created", "updated"} { // enabling twice is not an error
		what, err := e.starter.EnableMonitor(ctx, e.svc, time.Second)
		if err != nil || what != want {
			t.Fatalf("enable: %q %v, want %q", what, err, want)
		}
	}
	defer func() { _ = e.starter.DisableMonitor(ctx, e.svc.Name, e.svc.Environment) }()
	time.Sleep(3 * time.Second)
	if got := hook.seen(); len(got) != 0 {
		t.Fatalf("a healthy service raised alerts: %v", got)
	}

	// break the live slot: its health check answers 503
	blue := fmt.Sprintf("http://127.0.0.1:%d", e.svc.Run.Ports.Blue)
	if _, err := http.Get(blue + "/admin/fail?health=1"); err != nil {
		t.Fatal(err)
	}
	hook.waitFor(t, "open", 1)
	hook.waitFor(t, "update", 2)
	overviewIncidents(t, e, func(n int64) bool { return n >= 1 }, "at least 1")
	if _, err := http.Get(blue + "/admin/fail?health=0"); err != nil {
		t.Fatal(err)
	}
	hook.waitFor(t, "resolve", 1)
	overviewIncidents(t, e, func(n int64) bool { return n == 0 }, "none")
	if err := e.starter.DisableMonitor(ctx, e.svc.Name, e.svc.Environment); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // a run already started finishes

	got := hook.seen()
	t.Logf("webhook got %v", got)
	// per dedup key: one open, then updates, then one resolve (the broken
	// health endpoint fails both the health check and the probe)
	hook.mu.Lock()
	byKey := map[string][]string{}
	for i, k := range hook.keys {
		byKey[k] = append(byKey[k], got[i])
	}
	hook.mu.Unlock()
	healthKey := incident.Key(e.svc.Name, "test", "health:health")
	if _, ok := byKey[healthKey]; !ok {
		t.Fatalf("no incident for %s: %v", healthKey, byKey)
	}
	for k, acts := range byKey {
		opens := strings.Count(strings.Join(acts, ","), "open")
		if opens != 1 || acts[0] != "open" || acts[len(acts)-1] != "resolve" || strings.Count(strings.Join(acts, ","), "resolve") != 1 {
			t.Fatalf("incident %s: want one open, updates, one resolve; got %v", k, acts)
		}
	}
	if hook.badSigs != 0 {
		t.Fatalf("%d webhook calls had a bad signature", hook.badSigs)
	}

	requireMonitorMetrics(t, e, metricsAddr, len(got))
}

func TestMonitorVerbsFromTheCLI(t *testing.T) {
	e := newEnv(t, opts{router: "embedded", extra: "monitor:\n  every: 1h\n  security: {headers: [X-Frame-Options, Strict-Transport-Security]}"})
	e.given("v1")
	args := func(a ...string) []string { return append(a, e.svc.Name, "--env", "test") }
	out, code := cli(t, e, "monitor", "status", e.svc.Name, "--env", "test")
	expect(t, out, code, 2, "is not enabled (switchyard monitor enable")
	out, code = cli(t, e, append(args("monitor", "enable"), "-f", e.file)...)
	expect(t, out, code, 0, "created: every 1h0m0s")
	out, code = cli(t, e, append(args("monitor", "enable"), "-f", e.file, "--every", "30m")...)
	expect(t, out, code, 0, "updated: every 30m0s")
	// demo-app sends X-Frame-Options but no HSTS: one incident, exit 6
	out, code = cli(t, e, append(args("monitor", "run"), "-f", e.file)...)
	expect(t, out, code, 6, "✔ health:health", "✘ security:health: missing headers: Strict-Transport-Security",
		"incident     OPEN "+e.svc.Name+"/test/security:health")
	out, code = cli(t, e, args("monitor", "status")...)
	expect(t, out, code, 0, "schedule     monitor/"+e.svc.Name+"/test")
	out, code = cli(t, e, args("monitor", "disable")...)
	expect(t, out, code, 0, "disabled")
	out, code = cli(t, e, args("monitor", "disable")...)
	expect(t, out, code, 2, "no schedule monitor/"+e.svc.Name+"/test to disable")
}

// A critical check failing on the new version while the old slot is still
// warm: the Monitor signals the rollout to abort, and it goes back at once.
func TestACriticalCheckFailingInTheWarmWindowRollsTheRolloutBack(t *testing.T) {
	e := newEnv(t, opts{router: "embedded", noBake: true, scaleDown: time.Minute, extra: `monitor:
  rollbackOnCritical: true
  endpoints: [{name: live, url: "http://127.0.0.1:1/healthz", critical: true}]`}) // the URL is the router's, set below
	ctx := context.Background()
	e.svc.Monitor.Endpoints[0].URL = e.url + "healthz"
	e.given("v1")
	run := e.start("v2")
	e.waitFor("the scale-down window", func(st *starterStatus) bool { return st.Phase == "scaling-down" })
	green := fmt.Sprintf("http://127.0.0.1:%d", e.svc.Run.Ports.Green)
	if _, err := http.Get(green + "/admin/fail?health=1"); err != nil {
		t.Fatal(err)
	}
	mon, err := e.starter.C.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "monitor-now-" + e.svc.Name, TaskQueue: e.queue},
		workflows.MonitorWorkflow, workflows.MonitorInput{Spec: *e.svc})
	if err != nil {
		t.Fatal(err)
	}
	var st *incident.State
	if err := mon.Get(ctx, &st); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.Rollback, "abort signalled to deploy/") {
		t.Fatalf("the monitor's rollback: %q", st.Rollback)
	}
	o, err := e.starter.Wait(ctx, run)
	if err != nil || o.Kind != "RolledBack" || !strings.Contains(o.Reason, "critical check health:live failing") {
		t.Fatalf("the rollout: %v %+v", err, o)
	}
	if w := e.weights(); w.Blue != 100 {
		t.Fatalf("router says %s, want blue=100", w)
	}
	// the old version breaks too: the next run finds no rollout in its
	// window, says so, and fails nothing
	if _, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/admin/fail?health=1", e.svc.Run.Ports.Blue)); err != nil {
		t.Fatal(err)
	}
	st, err = e.starter.RunMonitor(ctx, e.svc)
	if err != nil || !strings.HasPrefix(st.Rollback, "no rollout in its rollback window") {
		t.Fatalf("a second run: %q %v", st.Rollback, err)
	}
	record(t, history(t, e, run), "deployment_aborted_by_monitor_signal.json")
	record(t, history(t, e, mon), "monitor_critical_check_signals_abort_incidents_attribute.json")
}

// overviewIncidents waits for the overview (the dashboard's, from the
// monitoring runs' search attribute) to count the service's open incidents as wanted.
func overviewIncidents(t *testing.T, e *env, ok func(int64) bool, want string) {
	t.Helper()
	var got []starter.ServiceState
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		o, err := e.starter.Overview(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = o.Services
		for _, st := range o.Services {
			if st.Service == e.svc.Name && st.Monitored && ok(st.Incidents) {
				t.Logf("overview: %s monitored, %d open incidents", st.Service, st.Incidents)
				return
			}
		}
	}
	t.Fatalf("the overview never showed %s open incidents for %s: %+v", want, e.svc.Name, got)
}

// requireMonitorMetrics reads the worker's /metrics: every alert sent and
// every failed attempt at the channel that is down counted, the weights,
// the rollout and the failed health checks.
func requireMonitorMetrics(t *testing.T, e *env, metricsAddr string, sent int) {
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	svc := `service="` + e.svc.Name + `"`
	// Prometheus label values are sanitised: webhook#0 → webhook_0, health:health → health_health
	if v := metric(t, body, "switchyard_alerts_sent_total", `channel="webhook_0"`, svc); v < float64(sent) {
		t.Fatalf("alerts sent to the webhook: %v in /metrics, %d received", v, sent)
	}
	if v := metric(t, body, "switchyard_alerts_failed_total", `channel="slack_1"`, svc); v < 3 {
		t.Fatalf("the channel that is down should count failed attempts, got %v", v)
	}
	if v := metric(t, body, "switchyard_traffic_weight", `slot="blue"`, svc); v != 100 {
		t.Fatalf("traffic weight of blue: %v", v)
	}
	if v := metric(t, body, "switchyard_rollouts_total", `result="promoted"`, svc); v != 1 {
		t.Fatalf("rollouts promoted: %v", v)
	}
	if v := metric(t, body, "switchyard_check_results_total", `check="health_health"`, `result="fail"`, svc); v < 2 {
		t.Fatalf("failed health checks: %v", v)
	}
}
