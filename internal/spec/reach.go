package spec

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Reach is a worker's policy: what the specs it runs may reach. The worker
// checks every spec it reads against it, so a spec started by any client
// (the CLI, the temporal CLI, the SDK) runs only what the worker allows.
// A list left out of the file allows everything of its kind; an empty list
// allows nothing.
type Reach struct {
	// Commands are the files or directories (absolute) that build, gate and
	// process-platform run commands may start.
	Commands []string `yaml:"commands"`
	// Env are the worker's environment variables a spec may read as secrets
	// or pass to its build (exact names, or a prefix ending in *).
	Env []string `yaml:"env"`
	// Hosts are the hosts checks, alerts and Prometheus may reach (a name,
	// host:port, or *.domain).
	Hosts []string `yaml:"hosts"`
	// Compose: what a Compose service may ask of the Engine.
	Compose ComposeReach `yaml:"compose"`
	// Path is the file this policy was read from ("" when none).
	Path string `yaml:"-"`
}

// ComposeReach lists what a Compose service may do only when allowed.
type ComposeReach struct {
	// AllowRoot lets a service run as root (user 0 or root).
	AllowRoot bool `yaml:"allowRoot"`
	// AllowHostBinds lets a service bind-mount / or the Docker socket.
	AllowHostBinds bool `yaml:"allowHostBinds"`
	// AllowEnvFileOutside lets env_file name a file outside the spec's directory.
	AllowEnvFileOutside bool `yaml:"allowEnvFileOutside"`
}

// LoadReach reads a worker policy file; unknown fields are errors.
func LoadReach(path string) (*Reach, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("worker policy: %w", err)
	}
	var r Reach
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil && !errors.Is(err, io.EOF) { // empty: nothing restricted
		return nil, fmt.Errorf("worker policy %s: %w", path, err)
	}
	for i, c := range r.Commands {
		if !filepath.IsAbs(c) {
			return nil, fmt.Errorf("worker policy %s: commands[%d]: %q must be an absolute path", path, i, c)
		}
		r.Commands[i] = filepath.Clean(c)
	}
	r.Path = path
	return &r, nil
}

// Check returns every way the spec reaches past the policy, each naming
// the spec's field. A nil policy allows everything.
func (r *Reach) Check(s *Service) Problems {
	if r == nil {
		return nil
	}
	var ps Problems
	add := func(field, format string, args ...any) {
		ps = append(ps, &Problem{Field: field, Msg: fmt.Sprintf(format, args...) + r.where()})
	}
	if r.Commands != nil {
		cmds := map[string][]string{"build.command": s.Build.Command}
		for i, g := range s.Gates {
			cmds[fmt.Sprintf("gates[%d].command", i)] = g.Command
		}
		if s.Platform == PlatformProcess {
			cmds["run.command"] = s.Run.Command
		}
		if m := s.Migrations; m != nil && m.Command != nil {
			cmds["migrations.command.expand"], cmds["migrations.command.contract"], cmds["migrations.command.down"] = m.Command.Expand, m.Command.Contract, m.Command.Down
		}
		for _, field := range slices.Sorted(maps.Keys(cmds)) {
			if c := cmds[field]; len(c) > 0 {
				if path, ok := r.command(s.Dir, c[0]); !ok {
					add(field, "%s is outside the commands this worker may run (%s)", path, strings.Join(r.Commands, ", "))
				}
			}
		}
	}
	if r.Env != nil {
		for _, v := range s.EnvReads() {
			if !r.env(v.Name) {
				add(v.Field, "the worker does not let specs read the variable %s", v.Name)
			}
		}
	}
	if r.Hosts != nil {
		for _, h := range s.HostsReached() {
			if !r.host(h.Name) {
				add(h.Field, "host %s is not one this worker may reach (%s)", h.Name, strings.Join(r.Hosts, ", "))
			}
		}
	}
	return ps
}

func (r *Reach) where() string {
	if r.Path == "" {
		return ""
	}
	return " (worker policy " + r.Path + ")"
}

// command resolves a command's first argument as the worker would start it
// and says whether the policy allows it. {{version}} cannot hold a "/" or
// "..", so the directory it lands in is known before the version is.
func (r *Reach) command(dir, name string) (string, bool) {
	name = strings.ReplaceAll(name, "{{version}}", "VERSION")
	var path string
	switch {
	case !strings.Contains(name, "/"):
		p, err := exec.LookPath(name)
		if err != nil {
			return name, false
		}
		path = p
	case filepath.IsAbs(name):
		path = name
	default:
		path = filepath.Join(dir, name)
	}
	path = filepath.Clean(path)
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	for _, c := range r.Commands {
		if path == c || strings.HasPrefix(path, strings.TrimSuffix(c, "/")+"/") {
			return path, true
		}
	}
	return path, false
}

func (r *Reach) env(name string) bool {
	for _, e := range r.Env {
		if e == name || (strings.HasSuffix(e, "*") && strings.HasPrefix(name, strings.TrimSuffix(e, "*"))) {
			return true
		}
	}
	return false
}

// host takes a host or host:port.
func (r *Reach) host(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	for _, a := range r.Hosts {
		switch {
		case a == hostport || a == host:
			return true
		case strings.HasPrefix(a, "*.") && strings.HasSuffix(host, a[1:]):
			return true
		}
	}
	return false
}

// Named is a name a spec uses, with the field that uses it.
type Named struct{ Field, Name string }

// EnvReads is every worker variable the spec reads: secrets of slots,
// alerts, registries and Prometheus headers, and what its build is passed.
func (s *Service) EnvReads() []Named {
	var out []Named
	add := func(field, name string) {
		if name != "" {
			out = append(out, Named{field, name})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.Run.SecretEnv)) {
		add("run.secretEnv."+k, s.Run.SecretEnv[k])
	}
	for i, name := range s.Build.Env {
		add(fmt.Sprintf("build.env[%d]", i), name)
	}
	add("docker.usernameEnv", s.Docker.UsernameEnv)
	add("docker.passwordEnv", s.Docker.PasswordEnv)
	if p := s.Rollout.Analysis.Prometheus; p != nil {
		for _, h := range slices.Sorted(maps.Keys(p.HeadersEnv)) {
			add("rollout.analysis.prometheus.headersEnv."+h, p.HeadersEnv[h])
		}
	}
	for _, m := range s.webMetrics() {
		for _, h := range slices.Sorted(maps.Keys(m.Web.HeadersEnv)) {
			add(m.Field+".web.headersEnv."+h, m.Web.HeadersEnv[h])
		}
	}
	for i, a := range s.Alerts {
		f := fmt.Sprintf("alerts[%d].", i)
		add(f+"urlEnv", a.URLEnv)
		add(f+"secretEnv", a.SecretEnv)
		add(f+"usernameEnv", a.UsernameEnv)
		add(f+"passwordEnv", a.PasswordEnv)
	}
	if s.Migrations != nil {
		add("migrations.databaseEnv", s.Migrations.DatabaseEnv)
	}
	return out
}

// HostsReached is every host the worker sends a request to for the spec:
// check endpoints, Prometheus, web metrics, alert URLs and SMTP servers.
func (s *Service) HostsReached() []Named {
	var out []Named
	addURL := func(field, raw string) {
		if raw == "" {
			return
		}
		if u, err := url.Parse(raw); err == nil && u.Host != "" {
			out = append(out, Named{field, u.Host})
		}
	}
	for i, e := range s.Monitor.Endpoints {
		addURL(fmt.Sprintf("monitor.endpoints[%d].url", i), e.URL)
	}
	if p := s.Rollout.Analysis.Prometheus; p != nil {
		addURL("rollout.analysis.prometheus.address", p.Address)
	}
	for _, m := range s.webMetrics() {
		// variables are refused in a web URL's host: no policy could allow them
		addURL(m.Field+".web.url", m.Web.URL)
	}
	for i, a := range s.Alerts {
		f := fmt.Sprintf("alerts[%d].", i)
		addURL(f+"url", a.URL)
		if a.SMTP != "" {
			out = append(out, Named{f + "smtp", a.SMTP})
		}
	}
	return out
}

// ComposeAllows is what a Compose service of this spec may ask for. With no
// worker policy (the CLI, a worker without --policy) nothing privileged is
// allowed but root with docker.allowRoot; a policy may allow more, and
// root still needs docker.allowRoot.
func (s *Service) ComposeAllows() ComposeReach {
	if s.Reach == nil {
		return ComposeReach{AllowRoot: s.Docker.AllowRoot}
	}
	c := s.Reach.Compose
	c.AllowRoot = c.AllowRoot && s.Docker.AllowRoot
	return c
}

// fieldMetric is a metric with the field that holds it.
type fieldMetric struct {
	Field string
	Metric
}

// webMetrics are the analysis's and the guard's web metrics.
func (s *Service) webMetrics() []fieldMetric {
	var out []fieldMetric
	add := func(field string, ms []Metric) {
		for i, m := range ms {
			if m.Web != nil {
				out = append(out, fieldMetric{fmt.Sprintf("%s[%d]", field, i), m})
			}
		}
	}
	add("rollout.analysis.metrics", s.Rollout.Analysis.Metrics)
	if g := s.Rollout.Guard; g != nil {
		add("rollout.guard.metrics", g.Metrics)
	}
	return out
}
