package spec

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const good = `service: api
run:
  command: ["./bin/api", "--version", "{{version}}"]
  ports: {blue: 9001, green: 9002}
  secretEnv: {DB_PASSWORD: API_DB_PASSWORD}
router:
  kind: haproxy
  haproxy: {socket: /run/haproxy.sock}
rollout:
  bake: 30s
environments:
  staging:
    rollout: {bake: 5s, steps: [50, 100]}
  production:
`

func problems(t *testing.T, err error) Problems {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want Problems, got %v", err)
	}
	return ps
}

func TestDefaultsAndEnvironmentOverrides(t *testing.T) {
	f, err := Parse("api.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	prod, err := f.Resolve("production")
	if err != nil {
		t.Fatal(err)
	}
	if got := prod.Rollout.Steps; len(got) != 5 || got[0] != 10 || got[4] != 100 {
		t.Errorf("production steps = %v, want the default 10..100", got)
	}
	if prod.Rollout.Bake.D() != 30*time.Second || prod.Rollout.ScaleDownDelay.D() != 10*time.Minute {
		t.Errorf("bake %s, scale-down delay %s", prod.Rollout.Bake, prod.Rollout.ScaleDownDelay)
	}
	if prod.Router.HAProxy.Backend != "api" || prod.Checks.Health.Path != "/healthz" {
		t.Errorf("defaults not applied: backend %q, health %q", prod.Router.HAProxy.Backend, prod.Checks.Health.Path)
	}
	st, err := f.Resolve("staging")
	if err != nil {
		t.Fatal(err)
	}
	if st.Rollout.Bake.D() != 5*time.Second || len(st.Rollout.Steps) != 2 {
		t.Errorf("staging overrides not applied: bake %s steps %v", st.Rollout.Bake, st.Rollout.Steps)
	}
	if st.Run.Ports.Blue != 9001 || st.Run.Command[0] != "./bin/api" {
		t.Errorf("staging lost the top-level run section: %+v", st.Run)
	}
}

func TestUnknownFieldIsReportedWithItsLine(t *testing.T) {
	src := strings.Replace(good, "  bake: 30s\n", "  bake: 30s\n  bakee: 1m\n", 1)
	_, err := Parse("api.yaml", []byte(src))
	ps := problems(t, err)
	if len(ps) != 1 || ps[0].Line != 11 || !strings.Contains(ps[0].Msg, `unknown field "bakee"`) {
		t.Fatalf("got %v", ps)
	}
	if got := ps[0].Error(); !strings.HasPrefix(got, "api.yaml:11: ") {
		t.Errorf("message %q does not start with file:line", got)
	}
}

func TestMistypedValuesAreReportedWithTheirLines(t *testing.T) {
	src := strings.Replace(good, "ports: {blue: 9001, green: 9002}", "ports: {blue: ninety, green: 9002}", 1)
	src = strings.Replace(src, "bake: 30s", "bake: 30", 1)
	_, err := Parse("api.yaml", []byte(src))
	ps := problems(t, err)
	joined := ps.Error()
	if !strings.Contains(joined, "api.yaml:4:") || !strings.Contains(joined, "ninety") {
		t.Errorf("port type error missing line 4: %s", joined)
	}
	if !strings.Contains(joined, "api.yaml:10:") || !strings.Contains(joined, "not a duration") {
		t.Errorf("bare-number duration not refused at line 10: %s", joined)
	}
}

func TestValidationFindsEveryProblem(t *testing.T) {
	src := `service: Bad_Name
run:
  ports: {blue: 9001, green: 9001}
  env: {API_TOKEN: hunter2}
router:
  kind: nginx
rollout:
  steps: [10, 50, 25, 90]
  bake: -5s
environments:
  production:
`
	f, err := Parse("x.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ps := f.ValidateAll()
	want := map[string]int{ // field → line
		"service": 1, "run.command": 2, "run.ports": 3, "run.env.API_TOKEN": 4, "router.kind": 6,
		"rollout.steps[2]": 8, "rollout.steps": 8, "rollout.bake": 9,
	}
	problemsAt(t, ps, want)
	if strings.Contains(ps.Error(), "hunter2") {
		t.Errorf("a secret value leaked into an error message: %s", ps.Error())
	}
}

func TestUnknownEnvironmentNamesTheDefinedOnes(t *testing.T) {
	f, err := Parse("api.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Resolve("prod")
	if err == nil || !strings.Contains(err.Error(), `unknown environment "prod" (defined: production, staging)`) {
		t.Fatalf("got %v", err)
	}
}

func TestSecretEnvMustNameAVariable(t *testing.T) {
	src := strings.Replace(good, "API_DB_PASSWORD", "'s3cr3t value'", 1)
	f, err := Parse("api.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Resolve("production")
	if err == nil || !strings.Contains(err.Error(), "run.secretEnv.DB_PASSWORD") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("got %v", err)
	}
}

func TestSyntaxErrorHasALine(t *testing.T) {
	_, err := Parse("api.yaml", []byte("service: api\nrun:\n  command: [a\n"))
	ps := problems(t, err)
	if ps[0].Line == 0 {
		t.Fatalf("no line in %v", ps)
	}
}

// Every service spec shipped in deployments/ (the files whose first key is
// service:) is valid: the list is read from the directory, so a new
// example is checked without being added here.
func TestShippedSpecsAreValid(t *testing.T) {
	paths, _ := filepath.Glob("../../deployments/*.yaml")
	n := 0
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var top map[string]any
		if err := yaml.Unmarshal(data, &top); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if _, ok := top["service"]; !ok {
			continue // a release, roles file or worker policy: see TestValidateChecksEveryKindOfFileAsWhatItIs
		}
		n++
		f, err := Load(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if ps := f.ValidateAll(); len(ps) > 0 {
			t.Errorf("%s:\n%s", path, ps.Error())
		}
	}
	if n < 9 {
		t.Fatalf("found %d service specs in deployments/, want the 9 shipped or more", n)
	}
}

const dockerSpec = `service: api
platform: docker
docker:
  image: registry.example.com/team/api
  replicas: 2
  usernameEnv: REG_USER
  passwordEnv: REG_PASSWORD
gates:
  - {command: [make, test]}
run:
  ports: {blue: 9001, green: 9011}
router:
  kind: haproxy
  haproxy: {socket: /run/haproxy.sock}
environments:
  production:
`

func TestDockerDefaultsAndReplicaAddresses(t *testing.T) {
	f, err := Parse("api.yaml", []byte(dockerSpec))
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Resolve("production")
	if err != nil {
		t.Fatal(err)
	}
	d := s.Docker
	if d.Context != "." || d.Dockerfile != "Dockerfile" || d.Network != "host" || d.Restart != "unless-stopped" || d.KeepImages != 3 {
		t.Fatalf("docker defaults: %+v", d)
	}
	if !d.PushEnabled() || RegistryHost(d.Image) != "registry.example.com" {
		t.Fatalf("an image naming a registry is pushed: %+v", d)
	}
	if RegistryHost("team/api") != "" || RegistryHost("localhost/api") != "localhost" || RegistryHost("127.0.0.1:5000/api") != "127.0.0.1:5000" {
		t.Fatal("RegistryHost")
	}
	if got := strings.Join(s.SlotAddrs("green"), ","); got != "127.0.0.1:9011,127.0.0.1:9012" {
		t.Fatalf("green's replicas: %s", got)
	}
	if s.Gates[0].Name != "make" || s.Gates[0].Timeout.D() != 10*time.Minute {
		t.Fatalf("gate defaults: %+v", s.Gates[0])
	}
	if len(s.Run.Command) != 0 {
		t.Fatal("run.command is optional on docker: the image's entrypoint runs")
	}
}

func TestDockerValidationNamesEachField(t *testing.T) {
	src := strings.NewReplacer(
		"image: registry.example.com/team/api", "image: Registry.example.com/API:v1",
		"replicas: 2", "replicas: 20\n  network: overlay\n  restart: sometimes\n  buildArgs: {NPM_TOKEN: abc}",
		"passwordEnv: REG_PASSWORD", "passwordEnv: 'hunter2 value'",
		"{command: [make, test]}", "{name: lint}",
	).Replace(dockerSpec)
	f, err := Parse("api.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ps := f.ValidateAll()
	want := []string{"docker.image", "docker.replicas", "docker.network", "docker.restart", "docker.passwordEnv", "docker.buildArgs.NPM_TOKEN", "gates[0].command"}
	for _, w := range want {
		found := false
		for _, p := range ps {
			if p.Field == w && p.Line > 0 {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem with a line for %s in:\n%s", w, ps.Error())
		}
	}
	if strings.Contains(ps.Error(), "hunter2") {
		t.Fatalf("a problem repeats the secret:\n%s", ps.Error())
	}
}

func TestKubernetesRoutersNeedTheirPlatformAndTheSelectorFlipHasNoSteps(t *testing.T) {
	src := `service: api
platform: kubernetes
kubernetes: {namespace: shop, image: registry.example.com/api}
router: {kind: kubernetes-service}
environments:
  flip: {}
  stepped:
    rollout: {steps: [50, 100]}
  gateway:
    router: {kind: gateway-api}
`
	f, err := Parse("api.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Resolve("flip")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Rollout.Steps) != 1 || s.Rollout.Steps[0] != 100 || s.SlotAddrs("green")[0] != "api-green.shop.svc:80" {
		t.Fatalf("selector flip: steps %v, green at %v", s.Rollout.Steps, s.SlotAddrs("green"))
	}
	ps := problems(t, func() error { _, err := f.Resolve("stepped"); return err }())
	if !strings.Contains(ps.Error(), "flips all traffic at once") {
		t.Fatalf("explicit steps with a selector flip: %v", ps)
	}
	ps = problems(t, func() error { _, err := f.Resolve("gateway"); return err }())
	if !strings.Contains(ps.Error(), "router.gatewayAPI.gateway: required") {
		t.Fatalf("gateway-api without a gateway: %v", ps)
	}
	g, _ := Parse("api.yaml", []byte(strings.Replace(src, "platform: kubernetes", "platform: process\nrun: {command: [x], ports: {blue: 1, green: 2}}", 1)))
	if ps := g.ValidateAll(); !strings.Contains(ps.Error(), "needs platform: kubernetes") {
		t.Fatalf("a kubernetes router on processes: %v", ps)
	}
}

func TestAWrongTypeNamesTheFieldAndTheTypeWanted(t *testing.T) {
	src := strings.Replace(good, "bake: 30s", "bake: 30s\n  steps: [10, three, 100]\n  retireOnFailure: maybe", 1)
	src = strings.Replace(src, "command: [", "host: [a, b]\n  command: [", 1)
	_, err := Parse("api.yaml", []byte(src))
	joined := problems(t, err).Error()
	for _, want := range []string{
		`api.yaml:12: rollout.steps[1]: "three" is not a whole number`,
		`api.yaml:13: rollout.retireOnFailure: "maybe" is not true or false`,
		`api.yaml:3: run.host: a list is not a string`,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("want %q in:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "cannot unmarshal") {
		t.Errorf("the parser's own words leaked: %s", joined)
	}
}

func TestAnAnalysisIntervalOfZeroIsRefusedSayingWhatItMeans(t *testing.T) {
	src := strings.Replace(good, "bake: 30s", "bake: 30s\n  analysis: {interval: 0s}", 1)
	f, err := Parse("api.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Resolve("production")
	joined := problems(t, err).Error()
	if !strings.Contains(joined, "api.yaml:11: rollout.analysis.interval: must be positive (got 0s)") || !strings.Contains(joined, "leave it out") {
		t.Fatalf("got %s", joined)
	}
	// left out, it is the bake: judged once per step
	src = strings.Replace(good, "bake: 30s", "bake: 30s\n  analysis: {maxErrorRate: 0.02}", 1)
	f, _ = Parse("api.yaml", []byte(src))
	s, err := f.Resolve("production")
	if err != nil || s.Rollout.Analysis.Interval.D() != 30*time.Second {
		t.Fatalf("default interval: %v %v", s, err)
	}
}

func TestAServiceWindowWithAnUnknownTimeZoneNamesItsLine(t *testing.T) {
	src := strings.Replace(good, "environments:", "windows:\n  allow: [\"Mon-Fri 09:00-16:00 Europe/Atlantis\"]\nenvironments:", 1)
	f, err := Parse("api.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Resolve("production")
	if err == nil || !strings.Contains(err.Error(), `api.yaml:12: windows.allow[0]: "Mon-Fri 09:00-16:00 Europe/Atlantis": unknown time zone "Europe/Atlantis"`) {
		t.Fatalf("got %v", err)
	}
}

func TestAnalysisProblemsNameFieldAndLine(t *testing.T) {
	src := `service: api
run:
  command: ["./x"]
  ports: {blue: 8081, green: 8082}
router: {kind: haproxy, haproxy: {socket: /run/haproxy.sock, backend: api}}
rollout:
  analysis:
    prometheus: {address: "127.0.0.1:9090", headersEnv: {Authorization: "Bearer abc"}}
    metrics:
      - name: p99
        query: 'rate(x{slot="{{slots}}"}[1m])'
        judge: {kind: mannwhitney, confidence: 98}
      - name: p99
        query: up
        onNoData: maybe
    earlyStop: {ratio: 0.5}
environments:
  production:
`
	f, err := Parse("x.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ps := f.ValidateAll()
	want := map[string]int{
		"rollout.analysis.prometheus.address":                  8,
		"rollout.analysis.prometheus.headersEnv.Authorization": 8,
		"rollout.analysis.metrics[0].query":                    11,
		"rollout.analysis.metrics[0].judge.kind":               12,
		"rollout.analysis.metrics[0].judge.confidence":         12,
		"rollout.analysis.metrics[1].name":                     13,
		"rollout.analysis.metrics[1]":                          13,
		"rollout.analysis.metrics[1].onNoData":                 15,
		"rollout.analysis.earlyStop.ratio":                     16,
	}
	problemsAt(t, ps, want)
}

func TestAHeaderValueWrittenInPlaceOfItsVariableIsNotEchoed(t *testing.T) {
	f, err := Parse("x.yaml", []byte(`service: api
run: {command: ["./x"], ports: {blue: 8081, green: 8082}}
router: {kind: haproxy, haproxy: {socket: /run/haproxy.sock}}
rollout:
  analysis:
    prometheus: {address: "http://127.0.0.1:9090", headersEnv: {Authorization: "Bearer s3cr3t"}}
environments:
  production:
`))
	if err != nil {
		t.Fatal(err)
	}
	if ps := f.ValidateAll(); len(ps) != 1 || strings.Contains(ps.Error(), "s3cr3t") {
		t.Fatalf("want one problem that does not echo the value, got:\n%s", ps.Error())
	}
}

// The shipped scrape config parses with the real Prometheus's promtool.
func TestShippedPrometheusConfigIsValid(t *testing.T) {
	tool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus; .ci/run does)")
	}
	out, err := exec.Command(tool, "check", "config", "--syntax-only", "../../deployments/prometheus/prometheus.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
}

// problemsAt checks that each field has a problem at its line.
func problemsAt(t *testing.T, ps Problems, want map[string]int) {
	t.Helper()
	got := map[string]int{}
	for _, p := range ps {
		got[p.Field] = p.Line
	}
	for field, line := range want {
		if l, ok := got[field]; !ok || l != line {
			t.Errorf("%s: want a problem at line %d, got line %d (present %v)\nall:\n%s", field, line, l, ok, ps.Error())
		}
	}
}

// Each source answers its own queries; the problems name the field and line.
func TestMetricSourcesNameWhatEachAnswers(t *testing.T) {
	src := `service: api
run:
  command: ["./x"]
  ports: {blue: 8081, green: 8082}
router: {kind: haproxy, haproxy: {socket: /run/haproxy.sock, backend: api}}
rollout:
  analysis:
    metrics:
      - {name: a, source: counters, query: p99, max: 1}
      - {name: b, source: counters, query: error_rate, judge: {kind: mann-whitney}}
      - {name: c, query: 'up'}
      - {name: d, source: web, max: 1}
      - {name: e, source: web, max: 1, web: {url: "ftp://x/{{slots}}", jsonPath: "$.x", headersEnv: {Authorization: "Bearer x"}}}
      - {name: f, source: statsd, query: x, max: 1}
      - {name: g, source: probe, query: p95_ms, max: 300, web: {url: "http://127.0.0.1:1/", jsonPath: "{$.x}"}}
      - {name: h, source: web, max: 1, web: {url: "http://127.0.0.1:9/q?slot={{slot}}", jsonPath: "{$.x}", timeout: 5m}}
environments:
  production:
`
	f, err := Parse("x.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	ps := f.ValidateAll()
	problemsAt(t, ps, map[string]int{
		"rollout.analysis.metrics[0].query":                        9,
		"rollout.analysis.metrics[1].judge":                        10,
		"rollout.analysis.metrics[2].source":                       11,
		"rollout.analysis.metrics[3].web":                          12,
		"rollout.analysis.metrics[4].web.url":                      13,
		"rollout.analysis.metrics[4].web.jsonPath":                 13,
		"rollout.analysis.metrics[4].web.headersEnv.Authorization": 13,
		"rollout.analysis.metrics[5].source":                       14,
		"rollout.analysis.metrics[6].web":                          15,
		"rollout.analysis.metrics[7].web.timeout":                  16,
	})
	for _, want := range []string{
		"the counters source answers requests, errors, error_rate, avg_response_ms",
		"needs a series over time, which the counters source does not keep",
		"prometheus needs rollout.analysis.prometheus.address",
		"must be prometheus, counters, probe or web",
	} {
		if !strings.Contains(ps.Error(), want) {
			t.Errorf("problems lack %q:\n%s", want, ps.Error())
		}
	}
	if strings.Contains(ps.Error(), "Bearer x") {
		t.Errorf("a header value is echoed:\n%s", ps.Error())
	}
}

// The guard's window, interval and metrics are checked like the analysis's.
func TestAGuardNamesItsProblems(t *testing.T) {
	src := strings.Replace(good, "rollout:\n  bake: 30s\n", `rollout:
  bake: 30s
  guard:
    for: 0s
    interval: 5m
    metrics:
      - {name: errors, source: counters, query: p99, max: 1}
`, 1)
	f, err := Parse("x.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	problemsAt(t, f.ValidateAll(), map[string]int{
		"rollout.guard.for":              12,
		"rollout.guard.metrics[0].query": 15,
	})
	src = strings.Replace(src, "for: 0s", "for: 1h", 1)
	f, _ = Parse("x.yaml", []byte(src))
	s, err := f.Resolve("production")
	if err == nil || !strings.Contains(err.Error(), "rollout.guard.metrics[0].query") {
		t.Fatalf("a guard metric the counters do not answer: %v", err)
	}
	src = strings.Replace(src, "query: p99", "query: error_rate", 1)
	f, _ = Parse("x.yaml", []byte(src))
	if s, err = f.Resolve("production"); err != nil {
		t.Fatal(err)
	}
	if g := s.Rollout.Guard; g.For.D() != time.Hour || g.Interval.D() != 5*time.Minute || g.Metrics[0].OnNoData != "inconclusive" {
		t.Fatalf("guard defaults: %+v", g)
	}
}
