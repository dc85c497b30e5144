// Package test holds Switchyard's end-to-end tests: a real Temporal server
// (embedded, in this process), real HAProxy, real slot processes, real HTTP
// load through the router. The helpers that start them live here, once.
package test

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/internal/devserver"
	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/platform"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/worker"
	"github.com/switchyard/switchyard/workflows"
)

var (
	embeddedAdminOnce sync.Once
	embeddedAdmin     int

	server *devserver.Server
	bins   string // built binaries: switchyard, good/demo-app, bad/demo-app
	// embedded is the in-process Caddy every test worker shares: Caddy's
	// config is process-wide
	embedded *router.Embedded
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("test: -short: skipping end-to-end tests (they need a Temporal server, HAProxy and real processes)")
		return 0
	}
	dir, err := os.MkdirTemp("", "switchyard-test-bins")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	bins = dir
	embedded = router.NewEmbedded(filepath.Join(dir, "router"))
	for _, b := range [][]string{
		{"build", "-o", filepath.Join(dir, "switchyard"), "../cmd/switchyard"},
		{"build", "-tags", "noserver", "-ldflags", "-s -w", "-o", filepath.Join(dir, "switchyard-worker"), "../cmd/switchyard"}, // as make build-worker
		{"build", "-o", filepath.Join(dir, "good", "demo-app"), "../cmd/demo-app"},
		{"build", "-ldflags", "-X main.errorRate=0.5", "-o", filepath.Join(dir, "bad", "demo-app"), "../cmd/demo-app"},
	} {
		if out, err := exec.Command("go", b...).CombinedOutput(); err != nil {
			fmt.Printf("test: go %s: %v\n%s", strings.Join(b, " "), err, out)
			return 1
		}
	}
	server, err = devserver.Start(devserver.Options{SearchAttributes: workflows.SearchAttributes, LogLevel: "fatal"})
	if err != nil {
		fmt.Println("test: start embedded Temporal server:", err)
		return 1
	}
	defer server.Stop()
	defer embedded.Stop()
	return m.Run()
}

// freePort returns a free port on 127.0.0.1 outside the ephemeral range,
// never the same twice in this process.
func freePort(t testing.TB) int {
	t.Helper()
	p, err := devserver.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func dial(t testing.TB) client.Client { return dialAt(t, server.HostPort) }

func dialAt(t testing.TB, hostPort string) client.Client { return dialWith(t, hostPort, "", nil) }

// credentials sends apiKey as a bearer token ("" sends none).
func credentials(apiKey string) client.Credentials {
	if apiKey == "" {
		return nil
	}
	return client.NewAPIKeyStaticCredentials(apiKey)
}

// dialWith dials with an API key (a JWT the server's authorizer checks)
// over TLS trusting tlsConf's roots (nil: plain).
func dialWith(t testing.TB, hostPort, apiKey string, tlsConf *tls.Config) client.Client {
	t.Helper()
	// a server just started can say "Frontend is not healthy yet" for a while
	var c client.Client
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		o := client.Options{HostPort: hostPort, Logger: quiet{}, Credentials: credentials(apiKey)}
		o.ConnectionOptions.TLS = tlsConf
		o.ConnectionOptions.TLSDisabled = tlsConf == nil
		if c, err = client.Dial(o); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// env is one service under test: its spec, its router, a worker and a starter.
type env struct {
	t       testing.TB
	svc     *spec.Service
	file    string // the spec file
	url     string // the router's frontend
	starter *starter.Starter
	router  router.Router
	queue   string
	address string // the Temporal frontend
}

type opts struct {
	router                  string // haproxy or embedded
	bake                    time.Duration
	steps                   []int
	noBake                  bool // bake: 0s
	noWorker                bool // the test runs its own worker process
	scaleDown               time.Duration
	gradual                 time.Duration // rollback.gradual.duration (default 4s)
	extra                   string        // more top-level YAML
	guard                   string        // rollout.guard as a YAML flow mapping (default none)
	runMore                 string        // more lines of run:, indented (process platform)
	specDir                 string        // the spec's directory (default a new one)
	rolloutMore, checksMore string        // more lines of rollout: and checks:, indented
	// haproxyRoutes, when set, gives the rules for the backend (before its
	// servers) reading the map file it is given; the spec names the map
	haproxyRoutes func(mapPath string) string
	ownCaddy      bool        // embedded: an admin port of its own (a separate process runs that Caddy)
	unixAdmin     bool        // embedded, ownCaddy: the admin API on a unix socket in the test's directory
	docker        *dockerOpts // platform: docker (docker_test.go)
	address       string      // a Temporal server other than the embedded one
	analysis      string      // rollout.analysis as a YAML flow mapping (default: judged at each bake's end, maxErrorRate 0.05)
	reach         *spec.Reach // the worker's policy (default none)
	apiKey        string      // the token the starter and worker present to Temporal
	tls           *tls.Config // the Temporal frontend's TLS (nil: plain)
	// haproxySocket, when set, is given HAProxy's runtime socket and returns
	// the one the router is to use (a test's proxy in front of it)
	haproxySocket func(real string) string
}

// newEnv sets up a service named after the test with its own ports, router
// (a real HAProxy process, or the embedded Caddy) and task queue.
func newEnv(t testing.TB, o opts) *env {
	t.Helper()
	dir := o.specDir
	if dir == "" {
		dir = t.TempDir()
	}
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	name = strings.Trim(name, "-")
	replicas := 1
	if o.docker != nil && o.docker.replicas > 1 {
		replicas = o.docker.replicas
	}
	front, blue, green := freePort(t), freePortRange(t, replicas), freePortRange(t, replicas)
	e := &env{t: t, url: fmt.Sprintf("http://127.0.0.1:%d/", front), queue: "q-" + name, address: server.HostPort}
	if o.address != "" {
		e.address = o.address
	}
	// versions map to builds: v3 and any "bad-*" version is the bad build
	// a version's name can add latency (lat10, lat40: ms) or errors (err2, err5, err10: %)
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte(fmt.Sprintf(`#!/bin/sh
case "$VERSION" in *lat10*) export DEMO_LATENCY=10ms ;; *lat40*) export DEMO_LATENCY=40ms ;; esac
case "$VERSION" in v1*) export DEMO_DB_COLUMN=name ;; *) export DEMO_DB_COLUMN=full_name ;; esac
case "$VERSION" in *wrongprice*) export DEMO_PRICE_BUG=1 ;; esac
case "$VERSION" in *err10*) export DEMO_ERROR_RATE=0.10 ;; *err2*) export DEMO_ERROR_RATE=0.02 ;; *err5*) export DEMO_ERROR_RATE=0.05 ;; esac
case "$VERSION" in
  v3|bad-*) exec %s/bad/demo-app ;;
  crash-*) echo "demo-app: cannot read /etc/app/config.yaml: no such file" >&2; exit 1 ;;
  *) exec %s/good/demo-app ;;
esac
`, bins, bins)), 0o755); err != nil {
		t.Fatal(err)
	}
	if o.bake == 0 && !o.noBake {
		o.bake = time.Second
	}
	if o.gradual == 0 {
		o.gradual = 4 * time.Second
	}
	if o.steps == nil {
		o.steps = spec.DefaultSteps
	}
	routerYAML := routerFor(t, o, dir, front, blue, green, replicas)
	var stepWords []string
	for _, st := range o.steps {
		if st == spec.HeaderStep {
			stepWords = append(stepWords, "header")
		} else {
			stepWords = append(stepWords, fmt.Sprint(st))
		}
	}
	steps := strings.Join(stepWords, ", ")
	if o.analysis == "" {
		o.analysis = fmt.Sprintf("{interval: %s, maxErrorRate: 0.05}", o.bake)
	}
	guardYAML := ""
	if o.guard != "" {
		guardYAML = "\n  guard: " + o.guard
	}
	runYAML := `run:
  command: ["./run.sh"]` + o.runMore
	if o.docker != nil {
		runYAML = dockerYAML(t, dir, o.docker)
	}
	src := fmt.Sprintf(`service: %s
%s
  ports: {blue: %d, green: %d}
%s
checks:
  health: {successes: 2, interval: 100ms, timeout: 20s}
  smoke: [{path: /version, bodyContains: "{{version}}"}]
  performance: {requests: 50, concurrency: 2, maxP95: 500ms}%s
rollout:
  steps: [%s]
  bake: %s
  analysis: %s
  scaleDownDelay: %s%s%s
rollback:
  gradual: {duration: %s}
%s
environments:
  test: {}
`, name, runYAML, blue, green, routerYAML, o.checksMore, steps, o.bake, o.analysis, o.scaleDown, guardYAML, o.rolloutMore, o.gradual, o.extra)
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	svc, err := starter.ResolveSpec(path, "test")
	if err != nil {
		t.Fatalf("spec: %v\n%s", err, src)
	}
	e.svc, e.file = svc, path
	e.connect(o, dir)
	return e
}

// routerFor starts the test's router (a real HAProxy, or a route on the
// process's embedded Caddy) and returns the spec's router line.
func routerFor(t testing.TB, o opts, dir string, front, blue, green, replicas int) string {
	if o.router == "caddy" {
		// router kind caddy (Caddy's own modules only) on a real Caddy: the
		// one this process runs, reached through its admin API like any other
		embeddedAdminOnce.Do(func() { embeddedAdmin = freePort(t) })
		admin := fmt.Sprintf("http://127.0.0.1:%d", embeddedAdmin)
		if err := embedded.Start(context.Background(), admin); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("router: {kind: caddy, caddy: {admin: '%s', listen: '127.0.0.1:%d'}}", admin, front)
	}
	if o.router == "caddy-modules" {
		// router kind caddy on a Caddy of its own built with Switchyard's
		// modules (cmd/caddy), a separate process like a team's own Caddy
		admin := startCaddyWithModules(t, dir)
		return fmt.Sprintf("router: {kind: caddy, caddy: {admin: '%s', listen: '127.0.0.1:%d', switchyardModules: true}}", admin, front)
	}
	if o.router == "embedded" {
		// one embedded Caddy per process: every test's service shares its admin API
		embeddedAdminOnce.Do(func() { embeddedAdmin = freePort(t) })
		admin := embeddedAdmin
		if o.ownCaddy {
			admin = freePort(t)
		}
		adminURL := fmt.Sprintf("http://127.0.0.1:%d", admin)
		if o.unixAdmin {
			// short: a unix socket's path must fit in 108 bytes, and test names are long
			sd, err := os.MkdirTemp("", "adm")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(sd) })
			adminURL = "unix:" + filepath.Join(sd, "caddy-admin.sock")
		}
		return fmt.Sprintf("router: {kind: embedded, caddy: {admin: '%s', listen: '127.0.0.1:%d'}}", adminURL, front)
	}
	rules, mapLine := "", ""
	if o.haproxyRoutes != nil {
		mapPath := filepath.Join(dir, "switchyard.map")
		if err := os.WriteFile(mapPath, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		rules, mapLine = o.haproxyRoutes(mapPath), ", map: "+mapPath
	}
	sock := startHAProxyWith(t, dir, front, blue, green, replicas, rules)
	if o.haproxySocket != nil {
		sock = o.haproxySocket(sock)
	}
	return fmt.Sprintf("router: {kind: haproxy, haproxy: {socket: %s, backend: app%s}}", sock, mapLine)
}

var (
	caddyBinOnce sync.Once
	caddyBinErr  error
)

// startCaddyWithModules builds cmd/caddy once per process and runs it with
// its admin API on a free port and its live state in dir; killed when the
// test ends. It returns the admin URL.
func startCaddyWithModules(t testing.TB, dir string) string {
	t.Helper()
	caddyBinOnce.Do(func() {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bins, "caddy"), "../cmd/caddy").CombinedOutput(); err != nil {
			caddyBinErr = fmt.Errorf("go build ../cmd/caddy: %v\n%s", err, out)
		}
	})
	if caddyBinErr != nil {
		t.Fatal(caddyBinErr)
	}
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `{"admin": {"listen": %q}}`, admin), 0o644); err != nil {
		t.Fatal(err)
	}
	stop := runCaddy(t, dir, admin, "--config", cfg)
	caddyStops.Store(dir, stop)
	t.Cleanup(func() {
		if f, ok := caddyStops.LoadAndDelete(dir); ok {
			f.(func())()
		}
	})
	return "http://" + admin
}

// caddyStops: the test dir's running Caddy → what stops it.
var caddyStops sync.Map

// restartCaddyWithModules kills the test's Caddy (SIGKILL: no clean stop)
// and starts it again from its autosaved config, as a host restart would.
func restartCaddyWithModules(t testing.TB, dir, adminURL string) {
	t.Helper()
	if f, ok := caddyStops.Load(dir); ok {
		f.(func())()
	}
	caddyStops.Store(dir, runCaddy(t, dir, strings.TrimPrefix(adminURL, "http://"), "--resume"))
}

func runCaddy(t testing.TB, dir, admin string, args ...string) (stop func()) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bins, "caddy"), append([]string{"run"}, args...)...)
	cmd.Env = append(os.Environ(), "SWITCHYARD_CADDY_STATE="+filepath.Join(dir, "caddy-state"),
		"XDG_DATA_HOME="+filepath.Join(dir, "caddy-data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "caddy-config"))
	logf, err := os.OpenFile(filepath.Join(dir, "caddy.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() }
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + admin + "/config/")
		if err == nil {
			resp.Body.Close()
			return stop
		}
		if i == 100 {
			stop()
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("caddy with Switchyard's modules did not start: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// connect gives the env its router, its starter and (unless the test runs
// its own) a worker, and stops the service's slots when the test ends.
func (e *env) connect(o opts, dir string) {
	t, svc := e.t, e.svc
	var err error
	if e.router, err = router.New(svc, embedded); err != nil {
		t.Fatal(err)
	}
	c := dialWith(t, e.address, o.apiKey, o.tls)
	e.starter = &starter.Starter{C: c, TaskQueue: e.queue}
	if !o.noWorker {
		w := worker.New(c, worker.Config{TaskQueue: e.queue, StateDir: filepath.Join(dir, "state"), Embedded: embedded, Reach: o.reach})
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Stop)
	}
	retireOnCleanup(t, svc)
}

// retireOnCleanup stops the service's slots when the test ends (a test
// that deploys to other environments calls it for each).
func retireOnCleanup(t testing.TB, svc *spec.Service) {
	t.Cleanup(func() {
		p, err := platform.New(svc)
		if err != nil {
			return
		}
		for _, s := range []rollout.Slot{rollout.Blue, rollout.Green} {
			_ = p.Retire(context.Background(), s)
		}
	})
}

// startHAProxy runs a real HAProxy with backend "app" over the two slots,
// weights 0, and returns its runtime API socket.
func startHAProxy(t testing.TB, dir string, front, blue, green, replicas int) string {
	return startHAProxyWith(t, dir, front, blue, green, replicas, "")
}

// startHAProxyWith is startHAProxy with rules in the backend before its servers.
func startHAProxyWith(t testing.TB, dir string, front, blue, green, replicas int, rules string) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy is not installed (apt-get install haproxy); .ci/run installs it")
	}
	sock := filepath.Join(dir, "haproxy.sock")
	cfg := fmt.Sprintf(`global
    stats socket %s mode 600 level admin
    # one line per request in haproxy.log, read back by requireNoFailures
    log stdout format raw local0
defaults
    mode http
    log global
    option httplog
    # only the requests that went wrong: a soak's million would fill the disk
    option dontlog-normal
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    # without it a check waits only "inter" (200ms) for an answer: a slot
    # stalled that long on a busy 2-core CI machine was marked down
    timeout check 1s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
frontend app
    bind 127.0.0.1:%d
    default_backend app
backend app
    balance roundrobin
%s%s`, sock, front, rules, haproxyServers(blue, green, replicas))
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	out, _ := os.Create(filepath.Join(dir, "haproxy.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "haproxy.log"))
	t.Fatalf("haproxy did not open %s:\n%s", sock, b)
	return ""
}

// haproxyServers lists blue, blue-2, ..., green, green-2, ... at weight 0.
func haproxyServers(blue, green, replicas int) string {
	var b strings.Builder
	for _, sl := range []struct {
		name string
		port int
	}{{"blue", blue}, {"green", green}} {
		for i := 0; i < replicas; i++ {
			name := sl.name
			if i > 0 {
				name += fmt.Sprintf("-%d", i+1)
			}
			fmt.Fprintf(&b, "    server %s 127.0.0.1:%d weight 0 check inter 200ms fall 2 rise 1\n", name, sl.port+i)
		}
	}
	return b.String()
}

// freePortRange returns the first of n consecutive free ports.
func freePortRange(t testing.TB, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		p := freePort(t)
		ok := true
		for i := 1; i < n && ok; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+i))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

// promotedUnderLoad waits for a rollout, stops the load, and fails the test
// unless the rollout was promoted and no request failed.
func (e *env) promotedUnderLoad(run client.WorkflowRun, gen *load.Generator, minRequests int) *starter.Outcome {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	o, err := e.starter.Wait(ctx, run)
	res := gen.Stop()
	if err != nil {
		e.t.Fatal(err)
	}
	if o.Kind != "" {
		e.t.Fatalf("%s: %s: %s", o.Status.Version, o.Kind, o.Reason)
	}
	requireNoFailures(e.t, res, minRequests)
	return o
}

// deploy runs a rollout to its end.
func (e *env) deploy(version string) *starter.Outcome {
	e.t.Helper()
	run := e.start(version)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o, err := e.starter.Wait(ctx, run)
	if err != nil {
		// what the rollout was doing when it did not end (paused? waiting?)
		st, _ := e.starter.Status(context.Background(), e.svc.Name, e.svc.Environment)
		e.t.Fatalf("deploy %s: %v; status: %+v", version, err, st)
	}
	return o
}

func (e *env) start(version string) client.WorkflowRun {
	e.t.Helper()
	run, err := e.starter.Deploy(context.Background(), e.svc, version, "test", starter.DeployOptions{})
	if err != nil {
		e.t.Fatalf("deploy %s: %v", version, err)
	}
	return run
}

func (e *env) weights() rollout.Weights {
	e.t.Helper()
	w, err := e.router.Weights(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// waitFor polls the rollout's status until cond holds.
func (e *env) waitFor(what string, cond func(st *starterStatus) bool) {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var last *starterStatus
	for time.Now().Before(deadline) {
		st, err := e.starter.Status(context.Background(), e.svc.Name, e.svc.Environment)
		if err == nil && cond(st) {
			return
		}
		if err == nil {
			last = st
		}
		time.Sleep(20 * time.Millisecond)
	}
	if last != nil {
		n := len(last.Events)
		var tail []string
		for _, ev := range last.Events[max(0, n-8):] {
			tail = append(tail, ev.Message)
		}
		e.t.Fatalf("timed out waiting for %s; the rollout of %s is %s (%s); its last events:\n%s", what, last.Version, last.Phase, last.Reason, strings.Join(tail, "\n"))
	}
	e.t.Fatalf("timed out waiting for %s", what)
}

func (e *env) instance(slot rollout.Slot) rollout.Instance { return inspect(e.t, e.svc, slot) }

// inspect asks a service's platform what runs in a slot.
func inspect(t testing.TB, s *spec.Service, slot rollout.Slot) rollout.Instance {
	t.Helper()
	p, err := platform.New(s)
	if err != nil {
		t.Fatal(err)
	}
	in, err := p.Inspect(context.Background(), slot)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}

// starterStatus is the status Query's answer.
type starterStatus = workflows.Status
