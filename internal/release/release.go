// Package release reads and validates a release spec
// (deployments/release.yaml): several services, each named by its service
// spec, rolled out in dependency order through environments in order, with
// approvals, soak times, windows and freezes. It is pure: the Release
// workflow and the CLI read it.
package release

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/internal/compose"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/window"
)

// Release is a release spec, read and checked.
type Release struct {
	Name string `yaml:"release" json:"name"`
	// Services by name; Order lists them sorted, for a stable order.
	Services     map[string]Service `yaml:"services" json:"services"`
	Environments []Environment      `yaml:"environments" json:"environments"`
	Windows      window.Spec        `yaml:"windows" json:"windows"`
	// Alerts are told when an environment waits for approval, and how it was decided.
	Alerts []spec.Alert `yaml:"alerts" json:"alerts,omitempty"`
	// Dir is the directory of the release file; service specs are relative to it.
	Dir string `yaml:"-" json:"dir"`
}

// Service is one service of a release: its spec file and the services it
// must wait for.
type Service struct {
	Spec  string   `yaml:"spec" json:"spec"`
	After []string `yaml:"after" json:"after,omitempty"`
	// Compose, when set, names the Compose file's service that defines the
	// containers: the spec (platform docker, often shared by several
	// services) then gets this service's name and docker.compose.
	Compose *ComposeService `yaml:"compose" json:"compose,omitempty"`
}

// ComposeService is a service of a Compose file, relative to the release file.
type ComposeService struct {
	File string `yaml:"file" json:"file"`
	// Service defaults to the release's name for it.
	Service string `yaml:"service" json:"service,omitempty"`
}

// Environment is one stage of a release, in order.
type Environment struct {
	Name     string   `yaml:"name" json:"name"`
	Approval Approval `yaml:"approval" json:"approval"`
	// Soak is how long the previous environment must have held, healthy,
	// before this one starts.
	Soak spec.Duration `yaml:"soak" json:"soak,omitempty"`
}

// Approval holds an environment until someone approves it.
type Approval struct {
	Required bool          `yaml:"required" json:"required"`
	Timeout  spec.Duration `yaml:"timeout" json:"timeout,omitempty"`
	// OnTimeout is abort, rollback or proceed.
	OnTimeout string `yaml:"onTimeout" json:"onTimeout,omitempty"`
	// Approvers, if given, are the only ones whose approval counts.
	Approvers []string `yaml:"approvers" json:"approvers,omitempty"`
	// TwoPeople: whoever started the release may not approve it.
	TwoPeople bool `yaml:"twoPeople" json:"twoPeople,omitempty"`
}

// What an approval that times out does.
const (
	OnTimeoutAbort    = "abort"    // the release ends; this environment was not touched
	OnTimeoutRollback = "rollback" // the release ends; the environments before go back
	OnTimeoutProceed  = "proceed"  // the environment goes on as if approved
)

var nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Load reads and checks a release file: every problem, each with its line.
// Each service's spec is loaded too, and must define every environment of
// the release.
func Load(path string) (*Release, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read release: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load on bytes already read.
func Parse(path string, data []byte) (*Release, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, spec.Problems{spec.YAMLProblem(nil, path, err.Error())}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, spec.Problems{{File: path, Line: 1, Msg: "the release must be a YAML mapping (release:, services:, environments:)"}}
	}
	root := doc.Content[0]
	var r Release
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var ps spec.Problems
			for _, msg := range te.Errors {
				ps = append(ps, spec.YAMLProblem(root, path, msg))
			}
			return nil, ps
		}
		return nil, spec.Problems{spec.YAMLProblem(root, path, err.Error())}
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	r.Dir = abs
	if ps := r.check(); len(ps) > 0 {
		for _, p := range ps {
			p.File = path
			if p.Line == 0 {
				p.Line = lineNear(root, p.Field)
			}
		}
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
		return nil, ps
	}
	return &r, nil
}

// lineNear is the line of a field, or of its nearest parent that is written.
func lineNear(root *yaml.Node, field string) int {
	for f := field; f != ""; {
		if l := spec.LineOf(root, f); l > 0 {
			return l
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 1
}

// ServiceNames are the services, sorted.
func (r *Release) ServiceNames() []string {
	names := make([]string, 0, len(r.Services))
	for n := range r.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (r *Release) check() spec.Problems {
	var ps spec.Problems
	add := func(field, format string, args ...any) {
		ps = append(ps, &spec.Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if r.Name == "" {
		add("release", "required: the release's name, like shop")
	} else if !nameRe.MatchString(r.Name) {
		add("release", "%q is not a valid name (lower-case letters, digits and '-', at most 63)", r.Name)
	}
	if len(r.Services) == 0 {
		add("services", "required: the services of the release, like backend: {spec: backend.yaml}")
	}
	if len(r.Environments) == 0 {
		add("environments", "required: the environments in order, like [{name: staging}, {name: production}]")
	}
	seen := map[string]bool{}
	for i, e := range r.Environments {
		f := fmt.Sprintf("environments[%d]", i)
		switch {
		case e.Name == "":
			add(f+".name", "required")
		case seen[e.Name]:
			add(f+".name", "environment %q is listed twice", e.Name)
		}
		seen[e.Name] = true
		a := e.Approval
		switch a.OnTimeout {
		case "", OnTimeoutAbort, OnTimeoutRollback, OnTimeoutProceed:
		default:
			add(f+".approval.onTimeout", "unknown action %q (use abort, rollback or proceed)", a.OnTimeout)
		}
		if a.Timeout < 0 {
			add(f+".approval.timeout", "must not be negative")
		}
		if !a.Required && (a.Timeout != 0 || a.OnTimeout != "" || len(a.Approvers) > 0 || a.TwoPeople) {
			add(f+".approval", "timeout, onTimeout, approvers and twoPeople need required: true")
		}
		if e.Soak < 0 {
			add(f+".soak", "must not be negative")
		}
		if i == 0 && e.Soak > 0 {
			add(f+".soak", "the first environment has none before it to soak")
		}
	}
	for _, name := range r.ServiceNames() {
		s := r.Services[name]
		f := "services." + name
		if !nameRe.MatchString(name) {
			add(f, "%q is not a valid service name", name)
		}
		for i, dep := range s.After {
			if _, ok := r.Services[dep]; !ok {
				add(fmt.Sprintf("%s.after[%d]", f, i), "unknown service %q (the release has %s)", dep, strings.Join(r.ServiceNames(), ", "))
			} else if dep == name {
				add(fmt.Sprintf("%s.after[%d]", f, i), "a service cannot wait for itself")
			}
		}
		ps = append(ps, r.checkSpec(name, f)...)
	}
	if cycle := r.cycle(); len(cycle) > 0 {
		add("services."+cycle[0]+".after", "a cycle: %s (a release runs in dependency order: remove one edge)", strings.Join(cycle, " → "))
	}
	ps = append(ps, spec.CheckAlerts(r.Alerts)...)
	_, werrs := r.Windows.Parse("windows")
	for _, e := range werrs {
		ps = append(ps, &spec.Problem{Field: e.Field, Msg: e.Msg})
	}
	return ps
}

// checkSpec loads a service's spec and resolves it in every environment of
// the release.
func (r *Release) checkSpec(name, field string) spec.Problems {
	s := r.Services[name]
	if s.Spec == "" {
		return spec.Problems{{Field: field + ".spec", Msg: "required: the service's spec file, like " + name + ".yaml"}}
	}
	f, err := spec.Load(r.SpecPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return spec.Problems{{Field: field + ".spec", Msg: fmt.Sprintf("no spec at %s", r.SpecPath(name))}}
	}
	if err != nil {
		return spec.Problems{{Field: field + ".spec", Msg: fmt.Sprintf("%s: %v", s.Spec, err)}}
	}
	for _, e := range r.Environments {
		if e.Name == "" {
			continue
		}
		svc, err := r.resolve(f, name, e.Name)
		if err != nil {
			f := field + ".spec"
			if s.Compose != nil {
				f = field + ".compose"
			}
			return spec.Problems{{Field: f, Msg: fmt.Sprintf("%s in environment %s: %v", s.Spec, e.Name, err)}}
		}
		if svc.Name != name {
			return spec.Problems{{Field: field + ".spec", Msg: fmt.Sprintf("%s describes service %q, not %q", s.Spec, svc.Name, name)}}
		}
	}
	return nil
}

// resolve resolves a service's spec in one environment: with its Compose
// service when the release names one (read here too, so a broken file is
// refused before anything starts).
func (r *Release) resolve(f *spec.File, name, env string) (*spec.Service, error) {
	c := r.Services[name].Compose
	var set func(*spec.Service)
	if c != nil {
		file := c.File
		if !filepath.IsAbs(file) {
			file = filepath.Join(r.Dir, file)
		}
		service := c.Service
		if service == "" {
			service = name
		}
		set = func(s *spec.Service) {
			s.Name = name
			s.Docker.Compose = &spec.Compose{File: file, Service: service}
		}
	}
	s, err := f.ResolveWith(env, set)
	if err != nil {
		return nil, err
	}
	s.Dir = filepath.Dir(r.SpecPath(name))
	if c != nil {
		if s.Platform != spec.PlatformDocker {
			return nil, fmt.Errorf("compose: the spec %s is platform %s; a Compose service runs on platform docker", r.Services[name].Spec, s.Platform)
		}
		if _, err := compose.LoadFor(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// SpecPath is where a service's spec file is.
func (r *Release) SpecPath(service string) string {
	p := r.Services[service].Spec
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(r.Dir, p)
}

// ResolveSpecs reads every service's spec for one environment.
func (r *Release) ResolveSpecs(env string) (map[string]*spec.Service, error) {
	out := map[string]*spec.Service{}
	for _, name := range r.ServiceNames() {
		f, err := spec.Load(r.SpecPath(name))
		if err != nil {
			return nil, err
		}
		s, err := r.resolve(f, name, env)
		if err != nil {
			return nil, err
		}
		out[name] = s
	}
	return out, nil
}

// cycle returns a dependency cycle, as the names around it, or nil.
func (r *Release) cycle() []string {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(n string) []string
	visit = func(n string) []string {
		state[n] = onPath
		path = append(path, n)
		deps := slices.Clone(r.Services[n].After)
		sort.Strings(deps)
		for _, d := range deps {
			if _, ok := r.Services[d]; !ok || d == n {
				continue
			}
			switch state[d] {
			case onPath:
				i := slices.Index(path, d)
				return append(slices.Clone(path[i:]), d)
			case unseen:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return nil
	}
	for _, n := range r.ServiceNames() {
		if state[n] == unseen {
			if c := visit(n); c != nil {
				return c
			}
		}
	}
	return nil
}

// Levels groups the services by dependency depth: each level runs in
// parallel, after every service of the levels before it. Names in a level
// are sorted, so the order is the same on every replay.
func (r *Release) Levels() [][]string {
	depth := map[string]int{}
	var get func(n string) int
	get = func(n string) int {
		if d, ok := depth[n]; ok {
			return d
		}
		depth[n] = 0
		d := 0
		for _, dep := range r.Services[n].After {
			d = max(d, get(dep)+1)
		}
		depth[n] = d
		return d
	}
	var levels [][]string
	for _, n := range r.ServiceNames() {
		d := get(n)
		for len(levels) <= d {
			levels = append(levels, nil)
		}
		levels[d] = append(levels[d], n)
	}
	return levels
}

// Environment returns the named environment and its index, or -1.
func (r *Release) Environment(name string) (Environment, int) {
	for i, e := range r.Environments {
		if e.Name == name {
			return e, i
		}
	}
	return Environment{}, -1
}
