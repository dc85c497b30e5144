package spec

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// DefaultSteps is the traffic plan of the strategy: 10 → 25 → 50 → 75 → 100 %.
var DefaultSteps = []int{10, 25, 50, 75, 100}

// applyDefaults fills what the spec left out; written says whether a field
// was written at all, for the fields where 0 is a choice.
func (s *Service) applyDefaults(written func(path string) bool) {
	if s.Platform == "" {
		s.Platform = PlatformProcess
	}
	if s.Build.Timeout == 0 {
		s.Build.Timeout = Duration(10 * time.Minute)
	}
	for i := range s.Gates {
		g := &s.Gates[i]
		if g.Timeout == 0 {
			g.Timeout = Duration(10 * time.Minute)
		}
		if g.Name == "" && len(g.Command) > 0 {
			g.Name = g.Command[0]
		}
	}
	s.defaultDocker()
	s.defaultKubernetes()
	s.defaultRunAndRouter()
	s.defaultChecks()
	s.defaultRollout(written)
	s.defaultMonitor()
	s.defaultRollback()
	s.defaultSLOs()
	s.defaultMigrations()
	s.defaultTargeting()
}

// defaultDocker fills in the docker platform.
func (s *Service) defaultDocker() {
	if s.Platform == PlatformDocker {
		d := &s.Docker
		if d.Context == "" && d.Compose == nil {
			d.Context = "."
		}
		if d.Dockerfile == "" && d.Compose == nil {
			d.Dockerfile = "Dockerfile"
		}
		if d.Replicas == 0 {
			d.Replicas = 1
		}
		if d.Network == "" {
			d.Network = "host"
		}
		if d.Restart == "" && d.Compose == nil {
			d.Restart = "unless-stopped"
		}
		if d.KeepImages == 0 {
			d.KeepImages = 3
		}
	}
}

// defaultKubernetes fills in the kubernetes platform (and the ecs one).
func (s *Service) defaultKubernetes() {
	if s.Platform == PlatformECS {
		e := &s.ECS
		if e.Services.Blue == "" {
			e.Services.Blue = s.Name + "-blue"
		}
		if e.Services.Green == "" {
			e.Services.Green = s.Name + "-green"
		}
		if e.DesiredCount == 0 {
			e.DesiredCount = 2
		}
		if e.Timeout == 0 {
			e.Timeout = Duration(10 * time.Minute)
		}
	}
	if s.Platform == PlatformKubernetes {
		k := &s.Kubernetes
		if k.Namespace == "" {
			k.Namespace = "default"
		}
		if k.ContainerPort == 0 {
			k.ContainerPort = 8080
		}
		if k.ServicePort == 0 {
			k.ServicePort = 80
		}
		if k.Replicas == 0 {
			k.Replicas = 1
		}
		if k.ProgressDeadline == 0 {
			k.ProgressDeadline = Duration(5 * time.Minute)
		}
		if k.SlotAddress == "" {
			k.SlotAddress = "{{service}}-{{slot}}.{{namespace}}.svc:{{port}}"
		}
		if s.Router.GatewayAPI.Route == "" {
			s.Router.GatewayAPI.Route = s.Name
		}
		// a router that cannot split has no steps between 0 and 100
		if !s.Router.Kind.CanSplit() && s.Router.Kind.Known() && s.Rollout.Steps == nil {
			s.Rollout.Steps = []int{100}
		}
	}
}

// defaultRunAndRouter fills in how a slot runs and how traffic reaches it.
func (s *Service) defaultRunAndRouter() {
	if s.Run.Host == "" {
		s.Run.Host = "127.0.0.1"
	}
	if s.Run.StartTimeout == 0 {
		s.Run.StartTimeout = Duration(30 * time.Second)
	}
	if s.Run.StopTimeout == 0 {
		s.Run.StopTimeout = Duration(10 * time.Second)
	}
	if s.Router.Kind == "" {
		s.Router.Kind = RouterEmbedded
	}
	if s.Router.HAProxy.Backend == "" {
		s.Router.HAProxy.Backend = s.Name
	}
	if s.Router.Caddy.Admin == "" {
		s.Router.Caddy.Admin = "http://127.0.0.1:2019"
	}
}

// defaultChecks fills in the checks.
func (s *Service) defaultChecks() {
	h := &s.Checks.Health
	if h.Path == "" {
		h.Path = "/healthz"
	}
	if h.Successes == 0 {
		h.Successes = 3
	}
	if h.Interval == 0 {
		h.Interval = Duration(250 * time.Millisecond)
	}
	if h.Timeout == 0 {
		h.Timeout = Duration(30 * time.Second)
	}
	for i := range s.Checks.Smoke {
		sm := &s.Checks.Smoke[i]
		if sm.Method == "" {
			sm.Method = "GET"
		}
		if sm.Status == 0 {
			sm.Status = 200
		}
		if sm.Name == "" {
			sm.Name = sm.Method + " " + sm.Path
		}
	}
	p := &s.Checks.Performance
	if p.Requests == 0 {
		p.Requests = 200
	}
	if p.Concurrency == 0 {
		p.Concurrency = 4
	}
	if p.Path == "" {
		p.Path = h.Path
	}
	if p.MaxP95 == 0 {
		p.MaxP95 = Duration(500 * time.Millisecond)
	}
	if p.MaxErrorRate == 0 {
		p.MaxErrorRate = 0.01
	}
}

// defaultRollout fills in the traffic plan and its analysis.
func (s *Service) defaultRollout(written func(path string) bool) {
	r := &s.Rollout
	if r.Steps == nil {
		r.Steps = append([]int(nil), DefaultSteps...)
	}
	if r.Bake == 0 && !written("rollout.bake") {
		r.Bake = Duration(30 * time.Second)
	}
	a := &r.Analysis
	// left out, or longer than the bake: once per step, at the bake's end;
	// written as 0 it is refused (it would mean analysing without pause)
	if ((a.Interval == 0 && !written("rollout.analysis.interval")) || a.Interval > r.Bake) && r.Bake > 0 {
		a.Interval = r.Bake
	}
	if a.MaxErrorRate == 0 {
		a.MaxErrorRate = 0.01
	}
	if a.ProbeRequests == 0 {
		a.ProbeRequests = 20
	}
	a.defaultAnalysis()
	r.defaultGuard()
	// 0 is a choice (retire at once), so only a missing value is defaulted.
	if r.ScaleDownDelay == nil {
		d := Duration(10 * time.Minute)
		r.ScaleDownDelay = &d
	}
}

// defaultMonitor fills in periodic monitoring.
func (s *Service) defaultMonitor() {
	m := &s.Monitor
	if m.Every == 0 {
		m.Every = Duration(5 * time.Minute)
	}
	if len(m.Endpoints) == 0 && (s.Router.Kind == RouterCaddy || s.Router.Kind == RouterEmbedded) && s.Router.Caddy.Listen != "" {
		m.Endpoints = []Endpoint{{Name: "health", URL: "http://" + s.Router.Caddy.Listen + s.Checks.Health.Path}}
	}
	for i := range m.Endpoints {
		if m.Endpoints[i].Status == 0 {
			m.Endpoints[i].Status = 200
		}
		if m.Endpoints[i].Name == "" {
			m.Endpoints[i].Name = fmt.Sprintf("endpoint-%d", i+1)
		}
	}
	if m.Performance.Requests == 0 {
		m.Performance.Requests = 20
	}
	if m.Performance.MaxP95 == 0 {
		m.Performance.MaxP95 = Duration(time.Second)
	}
	if m.Performance.MaxErrorRate == 0 {
		m.Performance.MaxErrorRate = 0.05
	}
	if m.Security.TLSExpiryDays == 0 {
		m.Security.TLSExpiryDays = 14
	}
}

// defaultRollback fills in the gradual rollback.
func (s *Service) defaultRollback() {
	g := &s.Rollback.Gradual
	if g.Duration == 0 {
		g.Duration = Duration(10 * time.Minute)
	}
	if g.Steps == nil {
		g.Steps = []int{75, 50, 25, 0}
	}
}

var (
	nameRe   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envVarRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	secretRe = regexp.MustCompile(`(?i)(password|passwd|secret|token|api_?key|private_?key|credential)`)
)

// Validate checks a resolved spec again, as the worker does with every
// spec it is given: a client may have sent one no CLI would.
// It checks a copy with the defaults filled in, so the spec is not changed.
func (s *Service) Validate() error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	var c Service
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	c.applyDefaults(func(string) bool { return true })
	if ps := c.validate(); len(ps) > 0 {
		return ps
	}
	return nil
}

func (s *Service) validate() Problems {
	var ps Problems
	add := func(field, format string, args ...any) {
		ps = append(ps, &Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if s.Name == "" {
		add("service", "required: the service's name, like api")
	} else if !nameRe.MatchString(s.Name) {
		add("service", "%q is not a valid name (lower-case letters, digits and '-', at most 63)", s.Name)
	}
	s.validatePlatform(add)
	s.validateBuild(add)
	s.validateRun(add)
	s.validateRouter(add)
	s.validateChecks(add)
	s.validateRollout(add)
	s.validateRollback(add)
	s.validateMonitor(add)
	s.validateAlerts(add)
	s.validateSLOs(add)
	s.validateMigrations(add)
	s.validateTargeting(add)
	_, werrs := s.Windows.Parse("windows")
	for _, e := range werrs {
		add(e.Field, "%s", e.Msg)
	}
	return ps
}

// validatePlatform checks the platform and what it needs.
func (s *Service) validatePlatform(add adder) {
	switch s.Platform {
	case PlatformProcess:
		if len(s.Run.Command) == 0 {
			add("run.command", "required: the command that starts one slot, like [./bin/api]")
		}
	case PlatformDocker:
		s.validateDocker(add)
	case PlatformKubernetes:
		s.validateKubernetes(add)
	case PlatformECS:
		s.validateECS(add)
	default:
		add("platform", "unknown platform %q (use %s)", s.Platform, platformList())
	}
}

// validateBuild checks the build and the gates.
func (s *Service) validateBuild(add adder) {
	if s.Build.Timeout < 0 {
		add("build.timeout", "must be positive")
	}
	for i, name := range s.Build.Env {
		if !envVarRe.MatchString(name) {
			add(fmt.Sprintf("build.env[%d]", i), "%q is not an environment variable's name", name)
		}
	}
	for i, g := range s.Gates {
		f := fmt.Sprintf("gates[%d]", i)
		if len(g.Command) == 0 {
			add(f+".command", "required: the command to run, like [make, test]")
		}
		if g.Timeout < 0 {
			add(f+".timeout", "must be positive")
		}
	}
}

// validateRun checks how a slot runs: its environment, ports and timeouts.
func (s *Service) validateRun(add adder) {
	for _, k := range slices.Sorted(maps.Keys(s.Run.Env)) {
		if !envVarRe.MatchString(k) {
			add("run.env", "%q is not a valid environment variable name", k)
		}
		if secretRe.MatchString(k) && s.Run.Env[k] != "" {
			add("run.env."+k, "looks like a secret: put it in run.secretEnv as %s: NAME_OF_A_WORKER_ENV_VAR, so its value never enters workflow history", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Run.SecretEnv)) {
		if !envVarRe.MatchString(k) {
			add("run.secretEnv", "%q is not a valid environment variable name", k)
		}
		if v := s.Run.SecretEnv[k]; !envVarRe.MatchString(v) {
			add("run.secretEnv."+k, "must name an environment variable of the worker that holds the secret, not the secret itself")
		}
	}
	checkPort := func(field string, p int) {
		if p < 1 || p > 65535 {
			add(field, "must be a port between 1 and 65535 (got %d)", p)
		}
	}
	// on kubernetes each slot is a Service of its own; run.ports only
	// serve a slotAddress that names {{slotPort}}
	if s.Platform != PlatformKubernetes || strings.Contains(s.Kubernetes.SlotAddress, "{{slotPort}}") {
		checkPort("run.ports.blue", s.Run.Ports.Blue)
		checkPort("run.ports.green", s.Run.Ports.Green)
		if s.Run.Ports.Blue != 0 && s.Run.Ports.Blue == s.Run.Ports.Green {
			add("run.ports", "blue and green must differ (both %d)", s.Run.Ports.Blue)
		}
	}
	if s.Run.StartTimeout <= 0 {
		add("run.startTimeout", "must be positive")
	}
	if s.Run.StopTimeout <= 0 {
		add("run.stopTimeout", "must be positive")
	}
}

// validateRouter checks the router.
func (s *Service) validateRouter(add adder) {
	switch s.Router.Kind {
	case RouterHAProxy:
		if s.Router.HAProxy.Socket == "" {
			add("router.haproxy.socket", "required: the path of HAProxy's runtime API socket ('stats socket PATH level admin')")
		}
	case RouterCaddy, RouterEmbedded:
		if s.Router.Caddy.Listen == "" {
			add("router.caddy.listen", "required: the address the service is served on, like 127.0.0.1:8080")
		} else if port := portOf(s.Router.Caddy.Listen); port == s.Run.Ports.Blue || port == s.Run.Ports.Green {
			add("router.caddy.listen", "port %d is also a slot's port", port)
		}
		admin := s.Router.Caddy.Admin
		switch {
		case strings.HasPrefix(admin, "unix:"):
			if !strings.HasPrefix(admin, "unix:/") {
				add("router.caddy.admin", "a unix socket's path must be absolute, like unix:/run/switchyard/caddy-admin.sock")
			}
		case !strings.HasPrefix(admin, "http://"):
			add("router.caddy.admin", "must be unix:/path/to/admin.sock or an http:// URL, like http://127.0.0.1:2019")
		case s.Router.Kind == RouterEmbedded && !loopback(admin):
			// the admin API has no authentication: it rewrites the routes
			add("router.caddy.admin", "the embedded router's admin API has no authentication: bind it to 127.0.0.1 or, better, a unix socket (unix:/run/switchyard/caddy-admin.sock)")
		}
		if s.Router.Caddy.SwitchyardModules && s.Router.Kind == RouterEmbedded {
			add("router.caddy.switchyardModules", "is for router kind caddy (a Caddy of its own built with cmd/caddy): the embedded router has them always")
		}
	case RouterGatewayAPI, RouterKubernetesService:
		if s.Platform != PlatformKubernetes {
			add("router.kind", "%s routes to Kubernetes Services: it needs platform: kubernetes", s.Router.Kind)
		}
		if s.Router.Kind == RouterGatewayAPI && s.Router.GatewayAPI.Gateway == "" {
			add("router.gatewayAPI.gateway", "required: the Gateway the HTTPRoute attaches to")
		}
		if !s.Router.Kind.CanSplit() && !slices.Equal(s.Rollout.Steps, []int{100}) {
			add("rollout.steps", "the %s router flips all traffic at once, so it goes 0 → 100 in one step: remove rollout.steps, or use a router that splits (gateway-api) for steps", s.Router.Kind)
		}
	case RouterALB:
		a := s.Router.ALB
		if !strings.HasPrefix(a.ListenerARN, "arn:") {
			add("router.alb.listenerArn", "required: the listener's ARN (arn:aws:elasticloadbalancing:...)")
		}
		if a.RuleARN != "" && !strings.HasPrefix(a.RuleARN, "arn:") {
			add("router.alb.ruleArn", "must be an ARN (arn:aws:elasticloadbalancing:...)")
		}
		for _, f := range []struct{ field, val string }{{"router.alb.targetGroups.blue", a.TargetGroups.Blue}, {"router.alb.targetGroups.green", a.TargetGroups.Green}} {
			if !strings.HasPrefix(f.val, "arn:") {
				add(f.field, "required: the slot's target group ARN")
			}
		}
		if a.TargetGroups.Blue != "" && a.TargetGroups.Blue == a.TargetGroups.Green {
			add("router.alb.targetGroups", "blue and green must be different target groups")
		}
	default:
		add("router.kind", "unknown router %q (use %s)", s.Router.Kind, routerList())
	}
}

// validateChecks checks the checks run before a slot gets traffic.
func (s *Service) validateChecks(add adder) {
	h := s.Checks.Health
	if !strings.HasPrefix(h.Path, "/") {
		add("checks.health.path", "must start with / (got %q)", h.Path)
	}
	if h.Successes < 1 {
		add("checks.health.successes", "must be at least 1")
	}
	if h.Interval <= 0 {
		add("checks.health.interval", "must be positive")
	}
	if h.Timeout <= 0 {
		add("checks.health.timeout", "must be positive")
	}
	for i, sm := range s.Checks.Smoke {
		f := fmt.Sprintf("checks.smoke[%d]", i)
		if !strings.HasPrefix(sm.Path, "/") {
			add(f+".path", "must start with / (got %q)", sm.Path)
		}
		if sm.Status < 100 || sm.Status > 599 {
			add(f+".status", "must be an HTTP status (got %d)", sm.Status)
		}
	}
	p := s.Checks.Performance
	if p.Requests < 1 || p.Requests > 100000 {
		add("checks.performance.requests", "must be between 1 and 100000 (got %d)", p.Requests)
	}
	if p.Concurrency < 1 || p.Concurrency > 64 {
		add("checks.performance.concurrency", "must be between 1 and 64 (got %d)", p.Concurrency)
	}
	if p.MaxP95 <= 0 {
		add("checks.performance.maxP95", "must be positive")
	}
	checkRate(add, "checks.performance.maxErrorRate", p.MaxErrorRate)
	if p.MaxP95Ratio < 0 {
		add("checks.performance.maxP95Ratio", "must not be negative")
	}
}

// validateRollout checks the traffic plan and its analysis.
func (s *Service) validateRollout(add adder) {
	r := s.Rollout
	if len(r.Steps) == 0 {
		add("rollout.steps", "must list at least one step, ending at 100")
	}
	stages := 0 // mirror, then header, before the first percentage
	for i, st := range r.Steps {
		switch {
		case st == MirrorStep && i == 0:
			stages++
			if r.Mirror == nil {
				add("rollout.steps[0]", "mirror: needs rollout.mirror (the share of requests to copy)")
			}
			continue
		case st == HeaderStep && i == stages:
			stages++
			if r.Match == nil {
				add(fmt.Sprintf("rollout.steps[%d]", i), "header: needs rollout.match (the requests that reach the new version before any weight)")
			}
			continue
		case st == MirrorStep:
			add(fmt.Sprintf("rollout.steps[%d]", i), "mirror comes first, before header and the percentages")
			continue
		}
		if st < 1 || st > 100 {
			add(fmt.Sprintf("rollout.steps[%d]", i), "must be a percentage between 1 and 100 (got %d)", st)
		} else if i > stages && st <= r.Steps[i-1] {
			add(fmt.Sprintf("rollout.steps[%d]", i), "steps must ascend (%d after %d)", st, r.Steps[i-1])
		}
	}
	if n := len(r.Steps); n > 0 && r.Steps[n-1] != 100 {
		add("rollout.steps", "the last step must be 100 (got %d)", r.Steps[n-1])
	}
	if r.Bake < 0 {
		add("rollout.bake", "must not be negative")
	}
	if *r.ScaleDownDelay < 0 {
		add("rollout.scaleDownDelay", "must not be negative")
	}
	a := r.Analysis
	if a.Interval <= 0 && r.Bake > 0 {
		add("rollout.analysis.interval", "must be positive (got %s): how often a step's traffic is judged during its bake; leave it out to judge once, at the end of each bake", a.Interval)
	}
	checkRate(add, "rollout.analysis.maxErrorRate", a.MaxErrorRate)
	if a.MaxP95 < 0 {
		add("rollout.analysis.maxP95", "must not be negative")
	}
	if a.MinRequests < 0 {
		add("rollout.analysis.minRequests", "must not be negative")
	}
	if a.MetricsPath != "" && !strings.HasPrefix(a.MetricsPath, "/") {
		add("rollout.analysis.metricsPath", "must start with / (got %q)", a.MetricsPath)
	}
	if a.ProbeRequests < 1 || a.ProbeRequests > 10000 {
		add("rollout.analysis.probeRequests", "must be between 1 and 10000 (got %d)", a.ProbeRequests)
	}
	a.validateAnalysis(add)
	s.Rollout.validateGuard(add)
}

// validateRollback checks the gradual rollback.
func (s *Service) validateRollback(add adder) {
	g := s.Rollback.Gradual
	if g.Duration <= 0 {
		add("rollback.gradual.duration", "must be positive")
	}
	for i, st := range g.Steps {
		if st < 0 || st > 99 {
			add(fmt.Sprintf("rollback.gradual.steps[%d]", i), "must be the bad slot's share, 0 to 99 (got %d)", st)
		} else if i > 0 && st >= g.Steps[i-1] {
			add(fmt.Sprintf("rollback.gradual.steps[%d]", i), "steps must descend (%d after %d)", st, g.Steps[i-1])
		}
	}
	if n := len(g.Steps); n == 0 || g.Steps[n-1] != 0 {
		add("rollback.gradual.steps", "the last step must be 0 (all traffic back on the previous slot)")
	}
}

// validateMonitor checks periodic monitoring.
func (s *Service) validateMonitor(add adder) {
	m := s.Monitor
	if m.Every.D() < time.Second {
		add("monitor.every", "must be at least 1s")
	}
	for i, e := range m.Endpoints {
		f := fmt.Sprintf("monitor.endpoints[%d]", i)
		if !strings.HasPrefix(e.URL, "http://") && !strings.HasPrefix(e.URL, "https://") {
			add(f+".url", "must be an http:// or https:// URL (got %q)", e.URL)
		}
	}
	if m.Performance.Requests < 1 || m.Performance.Requests > 1000 {
		add("monitor.performance.requests", "must be between 1 and 1000")
	}
}

// validateAlerts checks the alert channels.
func (s *Service) validateAlerts(add adder) {
	for i, al := range s.Alerts {
		f := fmt.Sprintf("alerts[%d]", i)
		need := func(field, val, what string) {
			if val == "" {
				add(f+"."+field, "required for %s alerts: %s", al.Kind, what)
			} else if strings.HasSuffix(field, "Env") && !envVarRe.MatchString(val) {
				add(f+"."+field, "must name an environment variable of the worker, not hold the secret")
			}
		}
		switch al.Kind {
		case "slack":
			need("urlEnv", al.URLEnv, "the variable holding the incoming-webhook URL")
		case "webhook":
			need("url", al.URL, "where to POST")
			need("secretEnv", al.SecretEnv, "the variable holding the HMAC key")
		case "pagerduty":
			need("secretEnv", al.SecretEnv, "the variable holding the Events v2 routing key")
		case "github":
			need("repo", al.Repo, "owner/name")
			need("secretEnv", al.SecretEnv, "the variable holding a token that may write issues")
		case "email":
			need("smtp", al.SMTP, "host:port of an SMTP server with STARTTLS")
			need("from", al.From, "the sender")
			if len(al.To) == 0 {
				add(f+".to", "required for email alerts: at least one recipient")
			}
			if al.UsernameEnv != "" || al.PasswordEnv != "" {
				need("usernameEnv", al.UsernameEnv, "the variable holding the SMTP user")
				need("passwordEnv", al.PasswordEnv, "the variable holding the SMTP password")
			}
		case "alertmanager":
			need("url", al.URL, "the Alertmanager's address, like http://127.0.0.1:9093")
			if al.SecretEnv != "" {
				need("secretEnv", al.SecretEnv, "the variable holding a bearer token")
			}
		default:
			add(f+".kind", "unknown alert channel %q (use slack, webhook, pagerduty, github, email or alertmanager)", al.Kind)
		}
	}
}

// CheckAlerts validates alert channels outside a service spec (a release's),
// naming each problem's field under alerts[i].
func CheckAlerts(alerts []Alert) Problems {
	var ps Problems
	s := &Service{Alerts: alerts}
	s.validateAlerts(func(field, format string, args ...any) {
		ps = append(ps, &Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	})
	return ps
}

// adder records one problem with a field.
type adder func(field, format string, args ...any)

func checkRate(add adder, field string, r float64) {
	if r < 0 || r > 1 {
		add(field, "must be a fraction between 0 and 1 (got %v)", r)
	}
}

var imageRe = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$`)

func (s *Service) validateDocker(add adder) {
	d := s.Docker
	if c := d.Compose; c != nil {
		if c.File == "" {
			add("docker.compose.file", "required: the Compose file, relative to this spec")
		}
		if c.Service == "" {
			add("docker.compose.service", "required: the Compose file's service this one runs")
		}
		for _, f := range []struct{ field, val string }{{"docker.image", d.Image}, {"docker.context", d.Context}, {"docker.dockerfile", d.Dockerfile}, {"docker.restart", d.Restart}} {
			if f.val != "" {
				add(f.field, "comes from the Compose file's service (docker.compose): remove it here")
			}
		}
		if len(d.BuildArgs) > 0 {
			add("docker.buildArgs", "comes from the Compose file's build.args (docker.compose): remove it here")
		}
	} else if d.Image == "" {
		add("docker.image", "required: the image repository, like registry.example.com/team/%s (the tag is the version)", s.Name)
	} else if !imageRe.MatchString(d.Image) {
		add("docker.image", "%q is not a repository name (lower case, no tag: the version is the tag)", d.Image)
	}
	if d.Replicas < 1 || d.Replicas > 32 {
		add("docker.replicas", "must be between 1 and 32 (got %d)", d.Replicas)
	} else if b, g := s.Run.Ports.Blue, s.Run.Ports.Green; b < g+d.Replicas && g < b+d.Replicas {
		add("docker.replicas", "%d replicas per slot need ports %d-%d (blue) and %d-%d (green), which overlap: move run.ports apart",
			d.Replicas, b, b+d.Replicas-1, g, g+d.Replicas-1)
	}
	switch d.Network {
	case "host":
		if d.Port != 0 {
			add("docker.port", "only for network: bridge (with host networking the container listens on the slot's port, told by PORT)")
		}
	case "bridge":
		if d.Compose != nil && d.Port == 0 {
			break // the Compose file's ports: target, checked on load
		}
		if d.Port < 1 || d.Port > 65535 {
			add("docker.port", "required for network: bridge: the port the container listens on (got %d)", d.Port)
		}
	default:
		add("docker.network", "unknown network %q (use host or bridge)", d.Network)
	}
	switch d.Restart {
	case "no", "on-failure", "unless-stopped", "always":
	case "":
		if d.Compose == nil {
			add("docker.restart", "required")
		}
	default:
		add("docker.restart", "unknown restart policy %q (use no, on-failure, unless-stopped or always)", d.Restart)
	}
	if d.MaxImageSizeMB < 0 {
		add("docker.maxImageSizeMB", "must not be negative")
	}
	if d.KeepImages < 1 {
		add("docker.keepImages", "must be at least 1 (the running image)")
	}
	for _, f := range []struct{ field, val string }{{"docker.usernameEnv", d.UsernameEnv}, {"docker.passwordEnv", d.PasswordEnv}} {
		if f.val != "" && !envVarRe.MatchString(f.val) {
			add(f.field, "must name an environment variable of the worker, not hold the credential")
		}
	}
	if (d.UsernameEnv == "") != (d.PasswordEnv == "") {
		add("docker.passwordEnv", "usernameEnv and passwordEnv go together")
	}
	for _, k := range slices.Sorted(maps.Keys(d.BuildArgs)) {
		if secretRe.MatchString(k) && d.BuildArgs[k] != "" {
			add("docker.buildArgs."+k, "looks like a secret: build arguments are stored in the image's history; pass secrets at run time with run.secretEnv")
		}
	}
}

func (s *Service) validateECS(add adder) {
	e := s.ECS
	if e.Cluster == "" {
		add("ecs.cluster", "required: the ECS cluster the slots' services run in")
	}
	if e.Image == "" {
		add("ecs.image", "required: the image repository, like 123456789012.dkr.ecr.eu-west-1.amazonaws.com/%s (the tag is the version)", s.Name)
	} else if !imageRe.MatchString(e.Image) {
		add("ecs.image", "%q is not a repository name (lower case, no tag: the version is the tag)", e.Image)
	}
	if e.Container == "" {
		add("ecs.container", "required: the task definition's container that runs the image")
	}
	if e.Services.Blue == e.Services.Green {
		add("ecs.services", "blue and green must be different ECS services")
	}
	if e.DesiredCount < 1 {
		add("ecs.desiredCount", "must be at least 1 (got %d)", e.DesiredCount)
	}
	if s.Router.Kind != RouterALB {
		add("router.kind", "platform ecs is routed by an Application Load Balancer: use router kind alb")
	}
}

var k8sNameRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (s *Service) validateKubernetes(add adder) {
	k := s.Kubernetes
	if !k8sNameRe.MatchString(k.Namespace) {
		add("kubernetes.namespace", "%q is not a namespace name", k.Namespace)
	}
	if k.Image == "" && s.Docker.Image == "" {
		add("kubernetes.image", "required unless docker.image builds one: the image repository (the tag is the version)")
	}
	if k.Replicas < 0 || k.Replicas > 1000 {
		add("kubernetes.replicas", "must be between 0 and 1000 (got %d)", k.Replicas)
	}
	for _, f := range []struct {
		field string
		p     int
	}{{"kubernetes.containerPort", k.ContainerPort}, {"kubernetes.servicePort", k.ServicePort}} {
		if f.p < 1 || f.p > 65535 {
			add(f.field, "must be a port between 1 and 65535 (got %d)", f.p)
		}
	}
	if k.ProgressDeadline < Duration(time.Second) {
		add("kubernetes.progressDeadline", "must be at least 1s")
	}
	for kind, m := range k.Resources {
		if kind != "requests" && kind != "limits" {
			add("kubernetes.resources."+kind, "unknown: use requests and limits")
		}
		for name := range m {
			if name != "cpu" && name != "memory" && name != "ephemeral-storage" {
				add("kubernetes.resources."+kind+"."+name, "unknown resource (use cpu, memory or ephemeral-storage)")
			}
		}
	}
	if len(s.Run.SecretEnv) > 0 {
		add("run.secretEnv", "on kubernetes secrets come from Secrets, read by the kubelet: use kubernetes.secretEnv {VAR: secret-name/key}")
	}
	for _, v := range slices.Sorted(maps.Keys(k.SecretEnv)) {
		if n, key, ok := strings.Cut(k.SecretEnv[v], "/"); !ok || !k8sNameRe.MatchString(n) || key == "" {
			add("kubernetes.secretEnv."+v, "must be secret-name/key, naming a Secret in the namespace")
		}
	}
}

func portOf(addr string) int {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return 0
	}
	var p int
	fmt.Sscanf(addr[i+1:], "%d", &p)
	return p
}

// loopback says whether an http:// URL's host is a loopback address.
func loopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}
