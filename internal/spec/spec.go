// Package spec reads and validates a service spec (deployments/<service>.yaml):
// how to run, route, check, roll out and roll back one service, per environment.
package spec

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/window"
	"gopkg.in/yaml.v3"
)

// Service is one service's spec, resolved for one environment. It is what a
// Deployment workflow receives as input, so it holds no secret values: only
// the names of the environment variables that carry them.
type Service struct {
	Name        string       `yaml:"service" json:"name"`
	Environment string       `yaml:"-" json:"environment"`
	Platform    PlatformKind `yaml:"platform" json:"platform"`
	Build       Build        `yaml:"build" json:"build"`
	// Gates run after the build and before any slot is touched.
	Gates      []Gate     `yaml:"gates" json:"gates,omitempty"`
	Docker     Docker     `yaml:"docker" json:"docker"`
	Kubernetes Kubernetes `yaml:"kubernetes" json:"kubernetes"`
	ECS        ECS        `yaml:"ecs" json:"ecs"`
	Run        Run        `yaml:"run" json:"run"`
	Router     Router     `yaml:"router" json:"router"`
	Checks     Checks     `yaml:"checks" json:"checks"`
	Rollout    Rollout    `yaml:"rollout" json:"rollout"`
	Rollback   Rollback   `yaml:"rollback" json:"rollback"`
	Monitor    Monitor    `yaml:"monitor" json:"monitor"`
	Alerts     []Alert    `yaml:"alerts" json:"alerts,omitempty"`
	// Windows are when a rollout may run; outside them it waits (or is
	// refused with --no-wait), and a freeze refuses it.
	Windows window.Spec `yaml:"windows" json:"windows,omitzero"`
	// SLOs are the service's objectives: while one burns its error budget
	// fast, new rollouts are held (slo.go).
	SLOs []SLO `yaml:"slos" json:"slos,omitempty"`
	// Migrations change the database schema as expand and contract
	// (migrations.go).
	Migrations *Migrations `yaml:"migrations" json:"migrations,omitempty"`
	// Dir is the directory the spec file was read from; relative paths in
	// commands resolve against it.
	Dir string `yaml:"-" json:"dir"`
	// Reach is the policy of the worker running the spec (never sent: the
	// worker sets it on the specs it admits); nil on the CLI.
	Reach *Reach `yaml:"-" json:"-"`
}

// Build optionally produces the version's artifact before it is provisioned.
type Build struct {
	Command []string `yaml:"command" json:"command,omitempty"`
	// Env names the worker's variables the build and gate commands get
	// besides a minimal environment (PATH, HOME, TMPDIR, LANG, VERSION).
	Env     []string `yaml:"env" json:"env,omitempty"`
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// Gate is a pre-deployment check: a command (tests, a linter, a scanner)
// that must exit 0. VERSION and ARTIFACT (the image digest on docker) are set.
type Gate struct {
	Name    string   `yaml:"name" json:"name"`
	Command []string `yaml:"command" json:"command"`
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// Docker says how the docker platform builds, ships and runs a slot: the
// image is built from Context/Dockerfile, tagged with the version, pushed
// when Image names a registry, and each slot runs as Replicas containers.
type Docker struct {
	// Compose, when set, takes the container's definition (image or build,
	// environment, env_file, healthcheck, volumes, resources, restart,
	// labels, user, command) from a service of a Compose file, read on the
	// worker; image, context, dockerfile, buildArgs and restart are then the
	// file's, not written here.
	Compose *Compose `yaml:"compose" json:"compose,omitempty"`
	// Image is the repository, like registry.example.com/team/api; the tag is the version.
	Image      string            `yaml:"image" json:"image"`
	Context    string            `yaml:"context" json:"context"`
	Dockerfile string            `yaml:"dockerfile" json:"dockerfile"`
	BuildArgs  map[string]string `yaml:"buildArgs" json:"buildArgs,omitempty"`
	// Push defaults to true when Image names a registry host.
	Push *bool `yaml:"push" json:"push,omitempty"`
	// UsernameEnv and PasswordEnv name the worker's variables holding the
	// registry credentials; without them $DOCKER_CONFIG/config.json is read.
	UsernameEnv string `yaml:"usernameEnv" json:"usernameEnv,omitempty"`
	PasswordEnv string `yaml:"passwordEnv" json:"passwordEnv,omitempty"`
	// Replicas is the number of containers per slot; replica i listens on
	// the slot's port + i.
	Replicas int `yaml:"replicas" json:"replicas"`
	// Network is host (the container binds run.host:port itself) or bridge
	// (the container's Port is published on run.host:port).
	Network string `yaml:"network" json:"network"`
	Port    int    `yaml:"port" json:"port,omitempty"`
	// Restart is the containers' restart policy: no, on-failure, unless-stopped, always.
	Restart string `yaml:"restart" json:"restart"`
	// MaxImageSizeMB fails the image gate above this size (0: no limit).
	MaxImageSizeMB int `yaml:"maxImageSizeMB" json:"maxImageSizeMB,omitempty"`
	// AllowRoot lets an image without a non-root USER run.
	AllowRoot bool `yaml:"allowRoot" json:"allowRoot,omitempty"`
	// KeepImages is how many of the service's images retire keeps.
	KeepImages int `yaml:"keepImages" json:"keepImages"`
}

// Compose names a service of a Compose file.
type Compose struct {
	// File is the Compose file, relative to the spec's directory.
	File    string `yaml:"file" json:"file"`
	Service string `yaml:"service" json:"service"`
}

// Kubernetes says how the kubernetes platform runs a slot: a Deployment and
// a Service named <service>-<slot> in Namespace.
type Kubernetes struct {
	Namespace string `yaml:"namespace" json:"namespace"`
	// Kubeconfig is a kubeconfig file (default $KUBECONFIG, then
	// ~/.kube/config, then the in-cluster service account).
	Kubeconfig string `yaml:"kubeconfig" json:"kubeconfig,omitempty"`
	Context    string `yaml:"context" json:"context,omitempty"`
	// Image is the repository run when no docker build makes a digest; the tag is the version.
	Image         string `yaml:"image" json:"image,omitempty"`
	ContainerPort int    `yaml:"containerPort" json:"containerPort"`
	ServicePort   int    `yaml:"servicePort" json:"servicePort"`
	Replicas      int    `yaml:"replicas" json:"replicas"`
	// Resources: requests and limits, like {requests: {cpu: 100m, memory: 128Mi}}.
	Resources        map[string]map[string]string `yaml:"resources" json:"resources,omitempty"`
	ProgressDeadline Duration                     `yaml:"progressDeadline" json:"progressDeadline"`
	// SecretEnv maps a variable to a Secret's key ("secret/key"), read by the kubelet.
	SecretEnv      map[string]string `yaml:"secretEnv" json:"secretEnv,omitempty"`
	DeleteOnRetire bool              `yaml:"deleteOnRetire" json:"deleteOnRetire,omitempty"`
	// SlotAddress is where checks reach a slot: {{service}}, {{slot}},
	// {{namespace}}, {{port}} (servicePort) and {{slotPort}} (run.ports) are filled in.
	SlotAddress string `yaml:"slotAddress" json:"slotAddress"`
}

// PushEnabled says whether built images go to a registry.
func (d Docker) PushEnabled() bool {
	if d.Push != nil {
		return *d.Push
	}
	return RegistryHost(d.Image) != ""
}

// RegistryHost returns the registry named by an image reference's first
// component ("127.0.0.1:5000/api" → "127.0.0.1:5000"), or "" for Docker Hub
// style names.
func RegistryHost(image string) string {
	i := strings.IndexByte(image, '/')
	if i < 0 {
		return ""
	}
	host := image[:i]
	if strings.ContainsAny(host, ".:") || host == "localhost" {
		return host
	}
	return ""
}

// SlotAddrs returns the host:port of each of a slot's replicas ("blue" or "green").
func (s *Service) SlotAddrs(slot string) []string {
	port := s.Run.Ports.Blue
	if slot == "green" {
		port = s.Run.Ports.Green
	}
	if s.Platform == PlatformKubernetes {
		// one address: the slot's Service spreads over its Pods
		return []string{strings.NewReplacer("{{service}}", s.Name, "{{slot}}", slot, "{{namespace}}", s.Kubernetes.Namespace,
			"{{port}}", strconv.Itoa(s.Kubernetes.ServicePort), "{{slotPort}}", strconv.Itoa(port)).Replace(s.Kubernetes.SlotAddress)}
	}
	addrs := make([]string, s.Replicas())
	for i := range addrs {
		addrs[i] = net.JoinHostPort(s.Run.Host, strconv.Itoa(port+i))
	}
	return addrs
}

// Replicas is the number of instances behind each slot.
func (s *Service) Replicas() int {
	if s.Platform == PlatformDocker && s.Docker.Replicas > 1 {
		return s.Docker.Replicas
	}
	return 1
}

// Run says how a slot runs: on the process platform, the command; on docker,
// the ports, environment and an optional command overriding the image's.
type Run struct {
	// Command starts one slot; "{{version}}" in an argument is replaced by the
	// version being deployed. PORT and VERSION are set in its environment.
	Command []string          `yaml:"command" json:"command"`
	Env     map[string]string `yaml:"env" json:"env,omitempty"`
	// SecretEnv maps a variable the slot sees to the worker's environment
	// variable holding its value, so the value never enters workflow history.
	SecretEnv    map[string]string `yaml:"secretEnv" json:"secretEnv,omitempty"`
	Host         string            `yaml:"host" json:"host"`
	Ports        SlotPorts         `yaml:"ports" json:"ports"`
	StartTimeout Duration          `yaml:"startTimeout" json:"startTimeout"`
	StopTimeout  Duration          `yaml:"stopTimeout" json:"stopTimeout"`
	// StateDir holds pidfiles and logs; default .switchyard/slots beside the spec.
	StateDir string `yaml:"stateDir" json:"stateDir"`
}

// SlotPorts are the ports of the two slots.
type SlotPorts struct {
	Blue  int `yaml:"blue" json:"blue"`
	Green int `yaml:"green" json:"green"`
}

// Router says how traffic is split between the slots.
type Router struct {
	// Kind is haproxy, caddy, embedded (a Caddy run inside the worker),
	// gateway-api (HTTPRoute weights) or kubernetes-service (a selector flip).
	Kind       RouterKind `yaml:"kind" json:"kind"`
	HAProxy    HAProxy    `yaml:"haproxy" json:"haproxy"`
	Caddy      Caddy      `yaml:"caddy" json:"caddy"`
	GatewayAPI GatewayAPI `yaml:"gatewayAPI" json:"gatewayAPI"`
	ALB        ALB        `yaml:"alb" json:"alb"`
}

// ALB names the Application Load Balancer listener (or one of its rules)
// whose forward action splits traffic between the slots' target groups.
type ALB struct {
	Region      string `yaml:"region" json:"region,omitempty"`
	ListenerARN string `yaml:"listenerArn" json:"listenerArn"`
	// RuleARN, when set, is the listener rule to set instead of the listener's default action.
	RuleARN      string      `yaml:"ruleArn" json:"ruleArn,omitempty"`
	TargetGroups SlotStrings `yaml:"targetGroups" json:"targetGroups"`
}

// SlotStrings is one value per slot.
type SlotStrings struct {
	Blue  string `yaml:"blue" json:"blue"`
	Green string `yaml:"green" json:"green"`
}

// Of returns the slot's value.
func (s SlotStrings) Of(slot string) string {
	if slot == "green" {
		return s.Green
	}
	return s.Blue
}

// ECS says how the ecs platform runs a slot: an ECS service per slot in a
// cluster, each behind its own target group (router.alb.targetGroups).
// Credentials come from the standard AWS chain of the worker (environment,
// shared files, the task or instance role); none are written here.
type ECS struct {
	Region  string `yaml:"region" json:"region,omitempty"`
	Cluster string `yaml:"cluster" json:"cluster"`
	// Services are the slots' ECS services (default <service>-blue and <service>-green).
	Services SlotStrings `yaml:"services" json:"services"`
	// Image is the repository (ECR); the tag is the version.
	Image string `yaml:"image" json:"image"`
	// Container is the task definition's container that runs Image.
	Container string `yaml:"container" json:"container"`
	// TaskDefinition is a task definition JSON file (relative to the spec)
	// each version's revision is registered from; without it, the slot
	// service's current revision with the image replaced.
	TaskDefinition string `yaml:"taskDefinition" json:"taskDefinition,omitempty"`
	// DesiredCount is the tasks per slot (default 2).
	DesiredCount int `yaml:"desiredCount" json:"desiredCount"`
	// Timeout bounds a deployment reaching steady state (default 10m).
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// GatewayAPI names the HTTPRoute whose two backendRefs (the slots'
// Services) carry the weights, and the Gateway it attaches to.
type GatewayAPI struct {
	Route            string `yaml:"route" json:"route"`
	Gateway          string `yaml:"gateway" json:"gateway"`
	GatewayNamespace string `yaml:"gatewayNamespace" json:"gatewayNamespace,omitempty"`
}

// HAProxy names the runtime API socket and the backend whose two servers are the slots.
type HAProxy struct {
	Socket  string `yaml:"socket" json:"socket"`
	Backend string `yaml:"backend" json:"backend"`
	// Map is the map file the backend's route rules read, for header,
	// cookie and test routes (`switchyard haproxy-routes` prints the rules).
	Map string `yaml:"map" json:"map,omitempty"`
}

// Caddy names the admin API and the address the service is served on.
type Caddy struct {
	Admin  string `yaml:"admin" json:"admin"`
	Listen string `yaml:"listen" json:"listen"`
	// SwitchyardModules says a Caddy of its own (router kind caddy) was
	// built with Switchyard's modules (go build ./cmd/caddy): the weights
	// are then set in place and it can keep sticky canaries and mirror.
	SwitchyardModules bool `yaml:"switchyardModules" json:"switchyardModules,omitempty"`
}

// Checks verify a slot before it gets traffic and analyse it while it does.
type Checks struct {
	Health      Health      `yaml:"health" json:"health"`
	Smoke       []Smoke     `yaml:"smoke" json:"smoke,omitempty"`
	Performance Performance `yaml:"performance" json:"performance"`
	// TestRoute sends smoke and performance through the router (targeting.go).
	TestRoute *TestRoute `yaml:"testRoute" json:"testRoute,omitempty"`
}

// Health passes after Successes consecutive 2xx answers within Timeout.
type Health struct {
	Path      string   `yaml:"path" json:"path"`
	Successes int      `yaml:"successes" json:"successes"`
	Interval  Duration `yaml:"interval" json:"interval"`
	Timeout   Duration `yaml:"timeout" json:"timeout"`
}

// Smoke is one request with its expected answer.
type Smoke struct {
	Name   string `yaml:"name" json:"name"`
	Method string `yaml:"method" json:"method"`
	Path   string `yaml:"path" json:"path"`
	Status int    `yaml:"status" json:"status"`
	// BodyContains may use "{{version}}".
	BodyContains string `yaml:"bodyContains" json:"bodyContains,omitempty"`
}

// Performance is a short bounded load on the idle slot, compared with the live one.
type Performance struct {
	Disabled     bool     `yaml:"disabled" json:"disabled"`
	Requests     int      `yaml:"requests" json:"requests"`
	Concurrency  int      `yaml:"concurrency" json:"concurrency"`
	Path         string   `yaml:"path" json:"path"`
	MaxP95       Duration `yaml:"maxP95" json:"maxP95"`
	MaxErrorRate float64  `yaml:"maxErrorRate" json:"maxErrorRate"`
	// MaxP95Ratio bounds the candidate's p95 against the live slot's (0: off).
	MaxP95Ratio float64 `yaml:"maxP95Ratio" json:"maxP95Ratio"`
}

// Rollout is the traffic plan.
type Rollout struct {
	Steps Steps `yaml:"steps" json:"steps"`
	// Bake is how long each step holds before the next (default 30s; 0s:
	// none, for pipelines that only want the checks and the steps).
	Bake     Duration `yaml:"bake" json:"bake"`
	Analysis Analysis `yaml:"analysis" json:"analysis"`
	// ScaleDownDelay keeps the old slot running after promotion, for an
	// instant rollback (default 10m; 0 retires it at once).
	ScaleDownDelay *Duration `yaml:"scaleDownDelay" json:"scaleDownDelay"`
	// RetireOnFailure stops the bad slot after a rollback instead of keeping it for inspection.
	RetireOnFailure bool `yaml:"retireOnFailure" json:"retireOnFailure"`
	// Guard keeps judging the promoted version after 100 % (guard.go).
	Guard *Guard `yaml:"guard" json:"guard,omitempty"`
	// Match and Sticky route by request as well as by weight (targeting.go).
	Match  *Match  `yaml:"match" json:"match,omitempty"`
	Sticky *Sticky `yaml:"sticky" json:"sticky,omitempty"`
	Mirror *Mirror `yaml:"mirror" json:"mirror,omitempty"`
}

// Monitor is what each periodic run checks on the live environment.
type Monitor struct {
	// Every is the schedule's interval (default 5m).
	Every       Duration     `yaml:"every" json:"every"`
	Endpoints   []Endpoint   `yaml:"endpoints" json:"endpoints,omitempty"`
	Performance MonitorProbe `yaml:"performance" json:"performance"`
	Security    Security     `yaml:"security" json:"security"`
	// RollbackOnCritical starts an immediate rollback when a critical check
	// fails while the previous slot is still warm.
	RollbackOnCritical bool `yaml:"rollbackOnCritical" json:"rollbackOnCritical"`
	// NotifyEvents sends deployment and rollback events to the alert channels too.
	NotifyEvents bool `yaml:"notifyEvents" json:"notifyEvents"`
}

// Endpoint is one URL of the live service to check.
type Endpoint struct {
	Name     string `yaml:"name" json:"name"`
	URL      string `yaml:"url" json:"url"`
	Status   int    `yaml:"status" json:"status"`
	Critical bool   `yaml:"critical" json:"critical"`
}

// MonitorProbe is a short bounded probe of the first endpoint.
type MonitorProbe struct {
	Requests     int      `yaml:"requests" json:"requests"`
	MaxP95       Duration `yaml:"maxP95" json:"maxP95"`
	MaxErrorRate float64  `yaml:"maxErrorRate" json:"maxErrorRate"`
	Critical     bool     `yaml:"critical" json:"critical"`
}

// Security lists the response headers every endpoint must send, and how
// many days an HTTPS endpoint's certificate must still be valid.
type Security struct {
	Headers       []string `yaml:"headers" json:"headers,omitempty"`
	TLSExpiryDays int      `yaml:"tlsExpiryDays" json:"tlsExpiryDays"`
}

// Alert is one channel incidents go to. Secrets (webhook URLs, tokens,
// passwords) are named by environment variable, never written here.
type Alert struct {
	Kind string `yaml:"kind" json:"kind"` // slack, webhook, pagerduty, github, email, alertmanager
	// URLEnv names the variable holding a Slack/Teams webhook URL.
	URLEnv string `yaml:"urlEnv" json:"urlEnv,omitempty"`
	// URL is a generic webhook's or an API's address (PagerDuty, GitHub Enterprise).
	URL string `yaml:"url" json:"url,omitempty"`
	// SecretEnv: the webhook's HMAC key, PagerDuty's routing key, GitHub's token.
	SecretEnv string   `yaml:"secretEnv" json:"secretEnv,omitempty"`
	Repo      string   `yaml:"repo" json:"repo,omitempty"` // owner/name, for github
	Labels    []string `yaml:"labels" json:"labels,omitempty"`
	// SMTP, for email: host:port, STARTTLS required.
	SMTP        string   `yaml:"smtp" json:"smtp,omitempty"`
	From        string   `yaml:"from" json:"from,omitempty"`
	To          []string `yaml:"to" json:"to,omitempty"`
	UsernameEnv string   `yaml:"usernameEnv" json:"usernameEnv,omitempty"`
	PasswordEnv string   `yaml:"passwordEnv" json:"passwordEnv,omitempty"`
	// CAFile trusts a private CA for the SMTP server's certificate.
	CAFile string `yaml:"caFile" json:"caFile,omitempty"`
}

// Rollback configures the gradual rollback strategy.
type Rollback struct {
	Gradual Gradual `yaml:"gradual" json:"gradual"`
}

// Gradual moves traffic back over Duration, through Steps (the bad slot's
// share, descending to 0), with analysis of the previous slot at each.
type Gradual struct {
	Duration Duration `yaml:"duration" json:"duration"`
	Steps    []int    `yaml:"steps" json:"steps"`
}

// Analysis judges the new slot on real traffic during each bake.
type Analysis struct {
	Interval     Duration `yaml:"interval" json:"interval"`
	MaxErrorRate float64  `yaml:"maxErrorRate" json:"maxErrorRate"`
	MaxP95       Duration `yaml:"maxP95" json:"maxP95"`
	MinRequests  int      `yaml:"minRequests" json:"minRequests"`
	// MetricsPath is a Prometheus endpoint on each slot with a
	// http_requests_total{code="..."} counter, used where the router keeps
	// no per-slot counters (Caddy); without it the slot is probed directly.
	MetricsPath string `yaml:"metricsPath" json:"metricsPath,omitempty"`
	// ProbeRequests is the size of a direct probe.
	ProbeRequests int `yaml:"probeRequests" json:"probeRequests"`
	// Prometheus and Metrics judge the slot by queries instead of the
	// router's counters (see analysis.go).
	Prometheus *Prometheus `yaml:"prometheus" json:"prometheus,omitempty"`
	Metrics    []Metric    `yaml:"metrics" json:"metrics,omitempty"`
	EarlyStop  EarlyStop   `yaml:"earlyStop" json:"earlyStop"`
}

// Duration is a time.Duration written with its unit ("30s", "10m"); a bare
// number is refused, since "30" meaning 30ns is never what anyone wants.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML parses "30s"-style durations.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		// a TypeError lets the decoder go on and report every problem
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration (write it with a unit, like 30s or 5m)", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back with its unit.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Problem is one thing wrong with a spec, at a line of its file.
type Problem struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteString(":")
	}
	if p.Line > 0 {
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(":")
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in one spec.
type Problems []*Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// File is a parsed spec file, before an environment is chosen.
type File struct {
	Path         string
	root         *yaml.Node // the document's top mapping
	Environments []string   // sorted
}

// fileShape is the whole file, decoded strictly to find unknown fields.
type fileShape struct {
	Service      `yaml:",inline"`
	Environments map[string]Service `yaml:"environments"`
}

// Load reads and strictly parses a spec file. Syntax errors, unknown fields
// and mistyped values come back as Problems with line numbers.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	return Parse(path, data)
}

var (
	lineRe    = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownRe = regexp.MustCompile(`field (\S+) not found in type [\w.]+`)
)

// Parse is Load on bytes already read.
func Parse(path string, data []byte) (*File, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Problems{yamlProblem(path, err.Error())}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, Problems{{File: path, Line: 1, Msg: "the spec must be a YAML mapping (service:, run:, router:, ...)"}}
	}
	var shape fileShape
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&shape); err != nil {
		var probs Problems
		var te *yaml.TypeError
		var p *Problem
		switch {
		case errors.As(err, &te):
			for _, msg := range te.Errors {
				probs = append(probs, namedType(doc.Content[0], yamlProblem(path, msg)))
			}
		case errors.As(err, &p):
			p.File = path
			probs = append(probs, p)
		default:
			probs = append(probs, yamlProblem(path, err.Error()))
		}
		return nil, probs
	}
	f := &File{Path: path, root: doc.Content[0]}
	for name := range shape.Environments {
		f.Environments = append(f.Environments, name)
	}
	sort.Strings(f.Environments)
	return f, nil
}

func yamlProblem(path, msg string) *Problem {
	msg = strings.TrimPrefix(msg, "yaml: ")
	p := &Problem{File: path, Msg: msg}
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Msg = m[2]
	}
	if m := unknownRe.FindStringSubmatch(p.Msg); m != nil {
		p.Msg = fmt.Sprintf("unknown field %q (check its spelling and indentation)", m[1])
	}
	return p
}

var mistypedRe = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")

// namedType rewrites the parser's "cannot unmarshal !!str `three` into
// int" to name the field and the kind of value it wants.
func namedType(root *yaml.Node, p *Problem) *Problem {
	m := mistypedRe.FindStringSubmatch(p.Msg)
	if m == nil {
		return p
	}
	got, value, into := m[1], m[2], m[3]
	want := "a mapping"
	switch {
	case strings.HasPrefix(into, "[]"):
		want = "a list"
	case strings.HasPrefix(into, "int") || strings.HasPrefix(into, "uint"):
		want = "a whole number"
	case strings.HasPrefix(into, "float"):
		want = "a number"
	case into == "bool":
		want = "true or false"
	case into == "string":
		want = "a string"
	}
	what := fmt.Sprintf("%q", value)
	switch got {
	case "map":
		what = "a mapping"
	case "seq":
		what = "a list"
	}
	p.Field = fieldAt(root, "", p.Line, value)
	p.Msg = fmt.Sprintf("%s is not %s", what, want)
	if p.Field == "" {
		p.Msg += " (" + into + ")"
	}
	return p
}

// fieldAt finds the dotted path of the value at line whose text is value
// (a mapping or list value has none: the first on the line then).
func fieldAt(n *yaml.Node, path string, line int, value string) string {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			// the deepest match: a mapping's first key shares its line
			if f := fieldAt(v, join(k.Value), line, value); f != "" {
				return f
			}
			if v.Line == line && (v.Kind == yaml.ScalarNode && v.Value == value || v.Kind != yaml.ScalarNode && value == "") {
				return join(k.Value)
			}
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if v.Line == line && v.Kind == yaml.ScalarNode && v.Value == value {
				return p
			}
			if f := fieldAt(v, p, line, value); f != "" {
				return f
			}
		}
	}
	return ""
}

// Resolve returns the spec for one environment: the top-level settings with
// that environment's overrides laid over them, defaulted and validated.
func (f *File) Resolve(env string) (*Service, error) { return f.ResolveWith(env, nil) }

// ResolveWith is Resolve with set applied to the service before its
// defaults and validation: a release naming a Compose service fills in the
// name and docker.compose of a spec shared by several services.
func (f *File) ResolveWith(env string, set func(*Service)) (*Service, error) {
	envNode := f.envNode(env)
	if envNode == nil {
		known := "none are defined: add an environments: section"
		if len(f.Environments) > 0 {
			known = "defined: " + strings.Join(f.Environments, ", ")
		}
		return nil, Problems{{File: f.Path, Line: f.lineOf("environments"), Msg: fmt.Sprintf("unknown environment %q (%s)", env, known)}}
	}
	var s Service
	if err := f.root.Decode(&s); err != nil {
		return nil, Problems{yamlProblem(f.Path, err.Error())}
	}
	if envNode.Kind == yaml.MappingNode {
		if err := envNode.Decode(&s); err != nil {
			return nil, Problems{yamlProblem(f.Path, err.Error())}
		}
	}
	s.Environment = env
	if f.Path != "" {
		// relative paths (migrations.dir) are checked where they resolve
		if abs, err := filepath.Abs(filepath.Dir(f.Path)); err == nil {
			s.Dir = abs
		}
	}
	if set != nil {
		set(&s)
	}
	s.applyDefaults(func(path string) bool { return lineIn(envNode, path) > 0 || f.lineOf(path) > 0 })
	if probs := s.validate(); len(probs) > 0 {
		for _, p := range probs {
			p.File = f.Path
			p.Line = f.lineOfIn(envNode, p.Field)
		}
		return nil, probs
	}
	return &s, nil
}

// ValidateAll resolves every environment and returns every problem found.
func (f *File) ValidateAll() Problems {
	var all Problems
	seen := map[string]bool{}
	if len(f.Environments) == 0 {
		all = append(all, &Problem{File: f.Path, Line: 1, Field: "environments", Msg: "no environments defined (add e.g. environments: {staging: {}, production: {}})"})
	}
	for _, env := range f.Environments {
		_, err := f.Resolve(env)
		var probs Problems
		if errors.As(err, &probs) {
			for _, p := range probs {
				key := p.Error()
				if seen[key] {
					continue
				}
				seen[key] = true
				if en := f.envNode(env); en != nil && lineIn(en, p.Field) > 0 {
					p.Msg += fmt.Sprintf(" (environment %s)", env)
				}
				all = append(all, p)
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Line < all[j].Line })
	return all
}

func (f *File) envNode(env string) *yaml.Node {
	envs := child(f.root, "environments")
	if envs == nil {
		return nil
	}
	return child(envs, env)
}

// lineOf finds the line of a dotted field path ("rollout.steps") in the file.
func (f *File) lineOf(path string) int { return lineIn(f.root, path) }

// lineOfIn prefers the environment's override of a field over the top level.
func (f *File) lineOfIn(envNode *yaml.Node, path string) int {
	if envNode != nil && envNode.Kind == yaml.MappingNode {
		if l := lineIn(envNode, path); l > 0 {
			return l
		}
	}
	if l := f.lineOf(path); l > 0 {
		return l
	}
	// the field is missing: point at its nearest parent that exists
	for i := strings.LastIndex(path, "."); i > 0; i = strings.LastIndex(path[:i], ".") {
		if l := f.lineOf(path[:i]); l > 0 {
			return l
		}
	}
	return 0
}

// lineIn returns the line of a dotted path's key ("rollout.steps"), or of
// an element ("rollout.steps[2]"); 0 when the path is absent.
func lineIn(n *yaml.Node, path string) int {
	line := 0
	for _, part := range strings.Split(path, ".") {
		idx := -1
		if i := strings.IndexByte(part, '['); i >= 0 {
			idx, _ = strconv.Atoi(strings.TrimSuffix(part[i+1:], "]"))
			part = part[:i]
		}
		key, next := childKV(n, part)
		if next == nil {
			return 0
		}
		n, line = next, key.Line
		if idx >= 0 && n.Kind == yaml.SequenceNode && idx < len(n.Content) {
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

func child(n *yaml.Node, key string) *yaml.Node {
	_, v := childKV(n, key)
	return v
}

func childKV(n *yaml.Node, key string) (k, v *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			k, v = n.Content[i], n.Content[i+1]
			if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				// a key written with no value ("production:") is an empty mapping
				v = &yaml.Node{Kind: yaml.MappingNode, Line: k.Line}
			}
			return k, v
		}
	}
	return nil, nil
}

// LineOf returns the line of a dotted path ("environments[1].approval") in
// a YAML mapping, or 0 when the path is absent: for other files' errors.
func LineOf(root *yaml.Node, path string) int { return lineIn(root, path) }

// YAMLProblem turns a YAML parser's message into a Problem with its line,
// naming the field and the type wanted for a mistyped value.
func YAMLProblem(root *yaml.Node, path, msg string) *Problem {
	p := yamlProblem(path, msg)
	if root != nil {
		p = namedType(root, p)
	}
	return p
}
