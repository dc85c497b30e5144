// Package compose reads a service of a Docker Compose file with the Compose
// specification's own loader (interpolation, .env, env_file, extends, as
// `docker compose config` does) into what the docker platform needs to run
// a slot's containers, and refuses what a slot cannot honour, naming the
// file's line and key.
package compose

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/internal/spec"
)

// Service is what a slot's containers take from a Compose service.
type Service struct {
	File, Name string
	// Image is the repository, without a tag (the version is the tag); ""
	// when the service builds and names no image.
	Image string
	Build *Build
	// Env is KEY=VALUE, sorted: environment over env_file, interpolated
	// with the environment of the process that loaded it.
	Env        []string
	Health     *Health
	Binds      []string // host:container[:ro]
	Volumes    []Volume // named volumes
	Memory     int64    // bytes, 0: no limit
	NanoCPUs   int64
	Restart    string
	Labels     map[string]string
	User       string
	Command    []string
	Entrypoint []string
	WorkingDir string
	// Port is the container's port under bridge networking: the first
	// ports: entry's target (each slot publishes it on its own port).
	Port int
	// EnvFiles are the env_file paths read, resolved.
	EnvFiles []string
	lines    map[string]int // the service's keys' lines, for errors
}

// Build is how the service's image is built.
type Build struct {
	Context, Dockerfile, Target string
	Args                        map[string]string
}

// Health is the service's healthcheck.
type Health struct {
	Test                                    []string
	Interval, Timeout, StartPeriod, StartIn time.Duration
	Retries                                 int
}

// Volume is a named volume mounted into the container.
type Volume struct {
	Name, Target string
	ReadOnly     bool
}

// Error is a problem with a Compose file: its line when known, and the key.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	at := e.File
	if e.Line > 0 {
		at += fmt.Sprintf(" line %d", e.Line)
	}
	if e.Key != "" {
		return fmt.Sprintf("compose file %s: %s: %s", at, e.Key, e.Msg)
	}
	return fmt.Sprintf("compose file %s: %s", at, e.Msg)
}

// supported are the service keys a slot honours; any other is refused by
// name, so nothing in the file is silently ignored.
var supported = []string{
	"build", "command", "cpus", "deploy", "entrypoint", "env_file", "environment", "expose", "extends",
	"healthcheck", "image", "labels", "mem_limit", "network_mode", "ports", "profiles", "restart", "user",
	"volumes", "working_dir",
}

// why says, for keys a slot cannot honour, what to do instead.
var why = map[string]string{
	"container_name": "Switchyard names each slot's containers (<service>-<env>-<slot>-<n>), so two slots can run side by side; remove it",
	"depends_on":     "a slot starts on its own; order services with a release's after:",
	"links":          "a slot starts on its own; order services with a release's after:",
	"networks":       "a slot joins the network docker.network names (host or bridge)",
	"scale":          "use docker.replicas",
	"secrets":        "pass secrets to the containers with run.secretEnv",
	"configs":        "mount the file with volumes:",
}

// LoadFor reads the Compose service a spec names (docker.compose) for its
// slots' network, relative to the spec's directory: what the CLI checks
// before anything starts and what the worker runs.
func LoadFor(s *spec.Service) (*Service, error) {
	c := s.Docker.Compose
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := Load(ctx, s.Dir, c.File, c.Service, s.Docker.Network)
	if err != nil {
		return nil, err
	}
	return cs, cs.privileges(s.Dir, s.ComposeAllows())
}

// hostPaths are bind sources that hand a container the machine: its root,
// its configuration, the kernel's views, or the Docker Engine itself.
var hostPaths = []string{"/", "/etc", "/proc", "/sys", "/root", "/boot", "/dev", "/run", "/var/run", "/var/lib/docker"}

// privileges refuses what a container could use to take the host, unless
// the worker's policy allows it: root, binds of host paths or the Docker
// socket, env_files outside the spec's directory (the worker's files).
func (s *Service) privileges(dir string, allow spec.ComposeReach) error {
	bad := func(key, msg string) error {
		return &Error{File: s.File, Line: s.lines[key], Key: "services." + s.Name + "." + key, Msg: msg}
	}
	if u, _, _ := strings.Cut(s.User, ":"); (u == "0" || u == "root") && !allow.AllowRoot {
		return bad("user", fmt.Sprintf("%q runs the containers as root: set docker.allowRoot in the spec (and compose.allowRoot in the worker's policy, if it has one) to allow it", s.User))
	}
	for _, b := range s.Binds {
		src, _, _ := strings.Cut(b, ":")
		src = filepath.Clean(src)
		if (slices.Contains(hostPaths, src) || strings.HasSuffix(src, "docker.sock")) && !allow.AllowHostBinds {
			return bad("volumes", fmt.Sprintf("a bind of %s gives the container the host: allow it with compose.allowHostBinds in the worker's policy", src))
		}
	}
	base := filepath.Clean(dir) + string(filepath.Separator)
	for _, f := range s.EnvFiles {
		if !strings.HasPrefix(filepath.Clean(f), base) && !allow.AllowEnvFileOutside {
			return bad("env_file", fmt.Sprintf("%s is outside the spec's directory %s: the worker would read its own file into the container; allow it with compose.allowEnvFileOutside in the worker's policy", f, dir))
		}
	}
	return nil
}

// Load reads service name of the Compose file at path (relative to dir)
// for a slot on network ("host" or "bridge").
func Load(ctx context.Context, dir, path, name, network string) (*Service, error) {
	file := path
	if !filepath.IsAbs(file) {
		file = filepath.Join(dir, file)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, &Error{File: path, Key: "docker.compose.file", Msg: err.Error()}
	}
	keys, err := serviceKeys(raw, name)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	bad := func(key, msg string) error {
		return &Error{File: path, Line: keys[key], Key: "services." + name + "." + key, Msg: msg}
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if k == "" || strings.HasPrefix(k, "x-") || slices.Contains(supported, k) {
			continue
		}
		if w, ok := why[k]; ok {
			return nil, bad(k, w)
		}
		return nil, bad(k, "not supported by the docker platform (it runs "+strings.Join(supported, ", ")+")")
	}
	opts, err := cli.NewProjectOptions([]string{file}, cli.WithWorkingDirectory(filepath.Dir(file)), cli.WithOsEnv, cli.WithEnvFiles(), cli.WithDotEnv,
		cli.WithProfiles([]string{"*"}), cli.WithName("switchyard"), cli.WithResolvedPaths(true))
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	sc, err := p.GetService(name)
	if err != nil {
		return nil, &Error{File: path, Key: "services." + name, Msg: "no such service (the file has " + strings.Join(p.ServiceNames(), ", ") + ")"}
	}
	s := &Service{File: file, Name: name, lines: keys, Restart: sc.Restart, Labels: map[string]string(sc.Labels), User: sc.User,
		Command: sc.Command, Entrypoint: sc.Entrypoint, WorkingDir: sc.WorkingDir, Memory: int64(sc.MemLimit), NanoCPUs: int64(sc.CPUS * 1e9)}
	if err := s.what(sc, bad); err != nil {
		return nil, err
	}
	if err := s.how(sc, network, bad); err != nil {
		return nil, err
	}
	return s, nil
}

// what reads what runs: the image or build, and its environment.
func (s *Service) what(sc types.ServiceConfig, bad func(key, msg string) error) error {
	if sc.Image != "" {
		if strings.Contains(sc.Image, "@") {
			return bad("image", fmt.Sprintf("%q is pinned by digest: the version is the tag, name the repository only", sc.Image))
		}
		s.Image = sc.Image
		if i := strings.LastIndexByte(s.Image, ':'); i > strings.LastIndexByte(s.Image, '/') {
			s.Image = s.Image[:i] // the version is the tag
		}
	}
	if b := sc.Build; b != nil {
		if b.DockerfileInline != "" {
			return bad("build", "dockerfile_inline is not supported: put the Dockerfile in the build context")
		}
		s.Build = &Build{Context: b.Context, Dockerfile: b.Dockerfile, Target: b.Target, Args: map[string]string{}}
		if s.Build.Dockerfile == "" {
			s.Build.Dockerfile = "Dockerfile"
		}
		for k, v := range b.Args {
			if v != nil {
				s.Build.Args[k] = *v
			}
		}
	} else if s.Image == "" {
		return bad("image", "the service needs an image (whose tag is the version) or a build")
	}
	for _, f := range sc.EnvFiles {
		s.EnvFiles = append(s.EnvFiles, f.Path)
	}
	for k, v := range sc.Environment {
		if v != nil {
			s.Env = append(s.Env, k+"="+*v)
		}
	}
	slices.Sort(s.Env)
	return nil
}

// how reads how it runs: health check, volumes, resources, network, ports.
func (s *Service) how(sc types.ServiceConfig, network string, bad func(key, msg string) error) error {
	if h := sc.HealthCheck; h != nil {
		s.Health = &Health{Test: h.Test}
		if h.Disable {
			s.Health.Test = []string{"NONE"}
		}
		for _, d := range []struct {
			in  *types.Duration
			out *time.Duration
		}{{h.Interval, &s.Health.Interval}, {h.Timeout, &s.Health.Timeout}, {h.StartPeriod, &s.Health.StartPeriod}, {h.StartInterval, &s.Health.StartIn}} {
			if d.in != nil {
				*d.out = time.Duration(*d.in)
			}
		}
		if h.Retries != nil {
			s.Health.Retries = int(*h.Retries)
		}
	}
	for _, v := range sc.Volumes {
		switch v.Type {
		case types.VolumeTypeBind:
			b := v.Source + ":" + v.Target
			if v.ReadOnly {
				b += ":ro"
			}
			s.Binds = append(s.Binds, b)
		case types.VolumeTypeVolume:
			s.Volumes = append(s.Volumes, Volume{Name: v.Source, Target: v.Target, ReadOnly: v.ReadOnly})
		default:
			return bad("volumes", fmt.Sprintf("a %s volume (%s) is not supported: use a bind mount or a named volume", v.Type, v.Target))
		}
	}
	if d := sc.Deploy; d != nil {
		if d.Replicas != nil {
			return bad("deploy", "deploy.replicas: use docker.replicas")
		}
		if l := d.Resources.Limits; l != nil {
			if l.MemoryBytes > 0 {
				s.Memory = int64(l.MemoryBytes)
			}
			if l.NanoCPUs > 0 {
				s.NanoCPUs = int64(l.NanoCPUs.Value() * 1e9)
			}
		}
	}
	switch sc.NetworkMode {
	case "", network:
	default:
		return bad("network_mode", fmt.Sprintf("%q: a slot runs on the network docker.network names (%s)", sc.NetworkMode, network))
	}
	for _, p := range sc.Ports {
		if network == "host" && p.Published != "" {
			return bad("ports", fmt.Sprintf("%s:%d publishes a fixed host port, which two slots cannot both hold: with host networking each slot listens on its own run.ports port (told by PORT); remove the published port",
				p.Published, p.Target))
		}
	}
	if network == "bridge" && len(sc.Ports) > 0 {
		s.Port = int(sc.Ports[0].Target) // each slot publishes it on its own port
	}
	return nil
}

// serviceKeys reads the service's keys and their lines from the file as
// written (before interpolation), for errors that name a line.
func serviceKeys(raw []byte, name string) (map[string]int, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("the file is empty")
	}
	services := child(doc.Content[0], "services")
	if services == nil {
		return nil, errors.New("no services: section")
	}
	svc := child(services, name)
	if svc == nil {
		var names []string
		for i := 0; i+1 < len(services.Content); i += 2 {
			names = append(names, services.Content[i].Value)
		}
		return nil, fmt.Errorf("services.%s: no such service (the file has %s)", name, strings.Join(names, ", "))
	}
	keys := map[string]int{}
	for i := 0; i+1 < len(svc.Content); i += 2 {
		keys[svc.Content[i].Value] = svc.Content[i].Line
	}
	return keys, nil
}

func child(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
