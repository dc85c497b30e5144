package platform

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/switchyard/switchyard/internal/compose"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Labels Switchyard puts on its images and containers; Compose's own labels
// are added too, so `docker ps` and Compose tooling group a slot's replicas.
const (
	LabelService     = "io.switchyard.service"
	LabelEnvironment = "io.switchyard.environment"
	LabelSlot        = "io.switchyard.slot"
	LabelVersion     = "io.switchyard.version"
	LabelArtifact    = "io.switchyard.artifact"
	LabelReplica     = "io.switchyard.replica"
)

// Docker runs each slot as containers on a Docker Engine: the image is built
// from the service's Dockerfile, validated, pushed, and run by digest, so
// what was checked is exactly what runs.
type Docker struct {
	svc *spec.Service
	cli *client.Client
	// compose is the Compose service the containers are defined by, if any.
	compose *compose.Service
}

// One client per DOCKER_HOST per process: each holds a pool of connections.
var dockerClients struct {
	sync.Mutex
	byHost map[string]*client.Client
}

// NewDocker returns the docker platform for a resolved spec, on the Engine
// named by DOCKER_HOST (default: the local socket).
func NewDocker(s *spec.Service) (*Docker, error) {
	d := &Docker{svc: s}
	if s.Docker.Compose != nil {
		var err error
		if d.svc, d.compose, err = WithCompose(s); err != nil {
			return nil, err
		}
	}
	dockerClients.Lock()
	defer dockerClients.Unlock()
	key := os.Getenv("DOCKER_HOST")
	if c, ok := dockerClients.byHost[key]; ok {
		d.cli = c
		return d, nil
	}
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, &BadInputError{fmt.Errorf("docker: client for DOCKER_HOST=%q: %w", key, err)}
	}
	if dockerClients.byHost == nil {
		dockerClients.byHost = map[string]*client.Client{}
	}
	dockerClients.byHost[key] = c
	d.cli = c
	return d, nil
}

// WithCompose reads the spec's Compose service (on the machine that calls
// it: the worker, whose environment interpolates it and whose env_files it
// reads) and returns the spec with the image, build and restart policy the
// file gives.
func WithCompose(s *spec.Service) (*spec.Service, *compose.Service, error) {
	c := s.Docker.Compose
	cs, err := compose.LoadFor(s)
	if err != nil {
		return nil, nil, &BadInputError{err}
	}
	cp := *s
	d := &cp.Docker
	d.Image = cs.Image
	if d.Image == "" {
		d.Image = "switchyard/" + s.Name // built and run here, never pushed
	}
	if b := cs.Build; b != nil {
		d.Context, d.Dockerfile, d.BuildArgs = b.Context, b.Dockerfile, b.Args
		if filepath.IsAbs(d.Dockerfile) {
			if rel, err := filepath.Rel(d.Context, d.Dockerfile); err == nil {
				d.Dockerfile = rel
			}
		}
	}
	d.Restart, _, _ = strings.Cut(cs.Restart, ":")
	if d.Restart == "" {
		d.Restart = "unless-stopped"
	}
	if d.Network == "bridge" && d.Port == 0 {
		if d.Port = cs.Port; d.Port == 0 {
			return nil, nil, &BadInputError{&compose.Error{File: c.File, Key: "services." + c.Service + ".ports",
				Msg: "with network: bridge the container's port is needed: give ports: [TARGET] or docker.port"}}
		}
	}
	return &cp, cs, nil
}

// engineErr says what to do when the Engine cannot be reached.
func (d *Docker) engineErr(what string, err error) error {
	if client.IsErrConnectionFailed(err) {
		return fmt.Errorf("docker: %s: cannot reach the Docker Engine at %s (is dockerd running? set DOCKER_HOST to use another): %w", what, d.cli.DaemonHost(), err)
	}
	return fmt.Errorf("docker: %s: %w", what, err)
}

func (d *Docker) tag(version string) string { return d.svc.Docker.Image + ":" + version }

// Build builds the image from docker.context and docker.dockerfile, tags it
// with the version and, when the image names a registry, pushes it. The
// artifact is the pushed digest (repo@sha256:…) or, unpushed, the image ID.
func (d *Docker) Build(ctx context.Context, version string, heartbeat func(string)) (string, error) {
	if heartbeat == nil {
		heartbeat = func(string) {}
	}
	if d.compose != nil && d.compose.Build == nil {
		return d.prebuilt(ctx, version, heartbeat)
	}
	dk := d.svc.Docker
	dir := dk.Context
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(d.svc.Dir, dir)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", &BadInputError{fmt.Errorf("docker: docker.context: %s is not a directory", dir)}
	}
	if _, err := os.Stat(filepath.Join(dir, dk.Dockerfile)); err != nil {
		return "", &BadInputError{fmt.Errorf("docker: docker.dockerfile: %s not found in the build context %s", dk.Dockerfile, dir)}
	}
	// before the build: a registry that refuses the credentials fails in
	// a second, not after the build and ~50 s of the Engine's upload retries
	auth, err := d.checkLogin(ctx)
	if err != nil {
		return "", err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeContext(pw, dir, dk.Dockerfile)) }()
	defer pr.Close()
	args := map[string]*string{}
	for _, k := range slices.Sorted(maps.Keys(dk.BuildArgs)) {
		v := strings.ReplaceAll(dk.BuildArgs[k], "{{version}}", version)
		args[k] = &v
	}
	heartbeat("building " + d.tag(version))
	target := ""
	if d.compose != nil {
		target = d.compose.Build.Target
	}
	resp, err := d.cli.ImageBuild(ctx, pr, build.ImageBuildOptions{
		Tags: []string{d.tag(version)}, Dockerfile: dk.Dockerfile, BuildArgs: args, Target: target,
		Remove: true, ForceRemove: true, Version: build.BuilderV1,
		Labels: map[string]string{LabelService: d.svc.Name, LabelVersion: version},
	})
	if err != nil {
		return "", d.engineErr("build "+d.tag(version), err)
	}
	defer resp.Body.Close()
	out := &lines{max: 20}
	var id string
	err = readStream(resp.Body, func(m streamMsg) {
		if m.Stream != "" {
			out.add(m.Stream)
			heartbeat(out.last())
		}
		if m.Aux != nil {
			var aux struct{ ID string }
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
	})
	if err != nil {
		return "", &BadInputError{fmt.Errorf("docker: build %s failed: %v; last output:\n%s", d.tag(version), err, out)}
	}
	if id == "" {
		ins, err := d.cli.ImageInspect(ctx, d.tag(version))
		if err != nil {
			return "", d.engineErr("inspect "+d.tag(version), err)
		}
		id = ins.ID
	}
	heartbeat("built " + d.tag(version) + " " + id)
	if !dk.PushEnabled() {
		return id, nil
	}
	digest, err := d.push(ctx, version, auth, heartbeat)
	if err != nil {
		return "", err
	}
	return dk.Image + "@" + digest, nil
}

// prebuilt is the build of a Compose service that names an image and no
// build: the version's image, already on the Engine or pulled.
func (d *Docker) prebuilt(ctx context.Context, version string, heartbeat func(string)) (string, error) {
	ref := d.tag(version)
	ins, err := d.cli.ImageInspect(ctx, ref)
	if client.IsErrNotFound(err) {
		if err := d.ensureImage(ctx, ref, heartbeat); err != nil {
			return "", err
		}
		ins, err = d.cli.ImageInspect(ctx, ref)
	}
	if err != nil {
		return "", d.engineErr("inspect "+ref, err)
	}
	for _, rd := range ins.RepoDigests {
		if strings.HasPrefix(rd, d.svc.Docker.Image+"@") {
			return rd, nil
		}
	}
	return ins.ID, nil
}

func (d *Docker) push(ctx context.Context, version, auth string, heartbeat func(string)) (string, error) {
	heartbeat("pushing " + d.tag(version))
	rc, err := d.cli.ImagePush(ctx, d.tag(version), image.PushOptions{RegistryAuth: auth})
	if err != nil {
		return "", d.engineErr("push "+d.tag(version), err)
	}
	defer rc.Close()
	var digest string
	err = readStream(rc, func(m streamMsg) {
		if m.Status != "" {
			heartbeat("push: " + m.Status)
		}
		if m.Aux != nil {
			var aux struct{ Digest string }
			if json.Unmarshal(m.Aux, &aux) == nil && aux.Digest != "" {
				digest = aux.Digest
			}
		}
	})
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "authentication required") || strings.Contains(msg, "unauthorized") || strings.Contains(msg, "denied") {
			msg += " (the registry's credentials were not accepted: set docker.usernameEnv/passwordEnv, or log in with docker login)"
		}
		return "", &BadInputError{fmt.Errorf("docker: the registry %s refused the push of %s: %s", spec.RegistryHost(d.svc.Docker.Image), d.tag(version), msg)}
	}
	if digest == "" {
		return "", fmt.Errorf("docker: push %s: the Engine reported no digest", d.tag(version))
	}
	return digest, nil
}

// credentials returns the registry credentials: the spec's variables, else
// the Docker config file's entry for the registry. Never logged.
func (d *Docker) credentials() (*registry.AuthConfig, error) {
	dk := d.svc.Docker
	host := spec.RegistryHost(dk.Image)
	if host == "" {
		return nil, nil
	}
	if dk.UsernameEnv != "" {
		user, ok := os.LookupEnv(dk.UsernameEnv)
		if !ok {
			return nil, &BadInputError{fmt.Errorf("docker: docker.usernameEnv: the worker has no environment variable %s", dk.UsernameEnv)}
		}
		pass, ok := os.LookupEnv(dk.PasswordEnv)
		if !ok {
			return nil, &BadInputError{fmt.Errorf("docker: docker.passwordEnv: the worker has no environment variable %s", dk.PasswordEnv)}
		}
		return &registry.AuthConfig{Username: user, Password: pass, ServerAddress: host}, nil
	}
	cfgDir := os.Getenv("DOCKER_CONFIG")
	if cfgDir == "" {
		home, _ := os.UserHomeDir()
		cfgDir = filepath.Join(home, ".docker")
	}
	b, err := os.ReadFile(filepath.Join(cfgDir, "config.json"))
	if err != nil {
		return nil, nil // anonymous
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, &BadInputError{fmt.Errorf("docker: %s: not valid JSON", filepath.Join(cfgDir, "config.json"))}
	}
	for _, k := range []string{host, "https://" + host, "http://" + host} {
		if a, ok := cfg.Auths[k]; ok && a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			user, pass, ok := strings.Cut(string(raw), ":")
			if err != nil || !ok {
				return nil, &BadInputError{fmt.Errorf("docker: %s: the auth entry of %s is not base64 user:password", filepath.Join(cfgDir, "config.json"), host)}
			}
			return &registry.AuthConfig{Username: user, Password: pass, ServerAddress: host}, nil
		}
	}
	return nil, nil
}

// checkLogin asks the Engine to log in to the registry (docker login) when
// the image will be pushed with credentials, and returns the encoded auth.
func (d *Docker) checkLogin(ctx context.Context) (string, error) {
	if !d.svc.Docker.PushEnabled() {
		return "", nil
	}
	ac, err := d.credentials()
	if err != nil || ac == nil {
		return "", err
	}
	if _, err := d.cli.RegistryLogin(ctx, *ac); err != nil {
		if client.IsErrConnectionFailed(err) {
			return "", d.engineErr("log in to "+ac.ServerAddress, err)
		}
		return "", &BadInputError{fmt.Errorf("docker: the registry %s refused the credentials of user %q (docker.usernameEnv/passwordEnv or the Docker config): %s",
			ac.ServerAddress, ac.Username, strings.ReplaceAll(err.Error(), ac.Password, "***"))}
	}
	return registry.EncodeAuthConfig(*ac)
}

// writeContext tars the build context, leaving out what .dockerignore
// excludes (but never the Dockerfile or .dockerignore, as the Engine needs them).
func writeContext(w io.Writer, dir, dockerfile string) error {
	var patterns []string
	if f, err := os.Open(filepath.Join(dir, ".dockerignore")); err == nil {
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return fmt.Errorf(".dockerignore: %w", err)
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return fmt.Errorf(".dockerignore: %w", err)
	}
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if rel != dockerfile && rel != ".dockerignore" {
			skip, err := pm.MatchesOrParentMatches(rel)
			if err != nil {
				return err
			}
			if skip {
				if de.IsDir() && !pm.Exclusions() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = rel
		if de.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// streamMsg is one line of the Engine's JSON progress stream.
type streamMsg struct {
	Stream      string                    `json:"stream"`
	Status      string                    `json:"status"`
	Error       string                    `json:"error"`
	ErrorDetail *struct{ Message string } `json:"errorDetail"`
	Aux         json.RawMessage           `json:"aux"`
}

func readStream(r io.Reader, each func(streamMsg)) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var m streamMsg
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != "" {
			return errors.New(strings.TrimSpace(m.Error))
		}
		each(m)
	}
}

// lines keeps the last lines of a build's output for its error.
type lines struct {
	max int
	l   []string
}

func (l *lines) add(s string) {
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		l.l = append(l.l, line)
		if len(l.l) > l.max {
			l.l = l.l[1:]
		}
	}
}

func (l *lines) last() string {
	if len(l.l) == 0 {
		return ""
	}
	return l.l[len(l.l)-1]
}

func (l *lines) String() string { return "  " + strings.Join(l.l, "\n  ") }

// byDigest says whether an artifact names an immutable image: a registry
// digest or a local image ID, never a tag that can move.
func byDigest(artifact string) bool {
	return strings.Contains(artifact, "@sha256:") || strings.HasPrefix(artifact, "sha256:")
}

// Gates checks the built image: deployed by digest, under the size limit,
// not running as root (unless allowed), and exposing the routed port.
func (d *Docker) Gates(ctx context.Context, artifact string) ([]rollout.CheckResult, error) {
	dk := d.svc.Docker
	now := time.Now()
	res := []rollout.CheckResult{}
	add := func(name string, ok bool, detail string) {
		res = append(res, rollout.CheckResult{Name: name, Passed: ok, Detail: detail, At: now})
	}
	add("image digest", byDigest(artifact), "runs "+artifact)
	ins, err := d.cli.ImageInspect(ctx, artifact)
	if err != nil {
		if client.IsErrNotFound(err) {
			add("image exists", false, artifact+" is not on the Engine")
			return res, nil
		}
		return nil, d.engineErr("inspect "+artifact, err)
	}
	mb := float64(ins.Size) / 1e6
	if dk.MaxImageSizeMB > 0 {
		add("image size", mb <= float64(dk.MaxImageSizeMB), fmt.Sprintf("%.1f MB (limit %d MB, docker.maxImageSizeMB)", mb, dk.MaxImageSizeMB))
	} else {
		add("image size", true, fmt.Sprintf("%.1f MB (no limit set)", mb))
	}
	user, exposed := "", []string{}
	if ins.Config != nil {
		user = ins.Config.User
		for p := range ins.Config.ExposedPorts {
			exposed = append(exposed, p)
		}
	}
	sort.Strings(exposed)
	name, _, _ := strings.Cut(user, ":")
	root := name == "" || name == "root" || name == "0"
	switch {
	case root && dk.AllowRoot:
		add("image user", true, "runs as root (allowed by docker.allowRoot)")
	case root:
		add("image user", false, fmt.Sprintf("runs as root (USER %q): add a USER with a non-zero uid to the Dockerfile, or set docker.allowRoot", user))
	default:
		add("image user", true, "runs as "+user)
	}
	if dk.Network == "bridge" {
		want := strconv.Itoa(dk.Port) + "/tcp"
		add("image port", slices.Contains(exposed, want), fmt.Sprintf("exposes %v; docker.port is %s", exposed, want))
	} else {
		add("image port", true, fmt.Sprintf("host networking: listens on the slot's port, told by PORT (image exposes %v)", exposed))
	}
	return res, nil
}

func (d *Docker) port(slot rollout.Slot) int {
	if slot == rollout.Blue {
		return d.svc.Run.Ports.Blue
	}
	return d.svc.Run.Ports.Green
}

// slotContainers lists the slot's containers, running or not, by replica.
func (d *Docker) slotContainers(ctx context.Context, slot rollout.Slot) ([]container.Summary, error) {
	list, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelService+"="+d.svc.Name),
		filters.Arg("label", LabelEnvironment+"="+d.svc.Environment),
		filters.Arg("label", LabelSlot+"="+string(slot)),
	)})
	if err != nil {
		return nil, d.engineErr("list the containers of slot "+string(slot), err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Labels[LabelReplica] < list[j].Labels[LabelReplica] })
	return list, nil
}

// Inspect reports the slot's containers.
func (d *Docker) Inspect(ctx context.Context, slot rollout.Slot) (Instance, error) {
	in := Instance{Slot: slot, Addr: d.svc.SlotAddrs(string(slot))[0]}
	list, err := d.slotContainers(ctx, slot)
	if err != nil || len(list) == 0 {
		return in, err
	}
	in.Running = true
	for _, c := range list {
		in.Containers = append(in.Containers, c.ID)
		in.Running = in.Running && c.State == "running"
	}
	in.Version, in.Artifact = list[0].Labels[LabelVersion], list[0].Labels[LabelArtifact]
	return in, nil
}

// Provision runs docker.replicas containers of the artifact in the slot, or
// keeps the ones that already run it; anything else in the slot is removed.
func (d *Docker) Provision(ctx context.Context, slot rollout.Slot, version, artifact string, heartbeat func(string)) (Instance, error) {
	if heartbeat == nil {
		heartbeat = func(string) {}
	}
	defer provisioning(fmt.Sprintf("docker:%s/%s/%s", d.svc.Name, d.svc.Environment, slot))()
	in := Instance{Slot: slot, Addr: d.svc.SlotAddrs(string(slot))[0], Version: version, Artifact: artifact}
	if artifact == "" {
		return in, &BadInputError{fmt.Errorf("docker: slot %s: no image for %s (the build did not run)", slot, version)}
	}
	list, err := d.slotContainers(ctx, slot)
	if err != nil {
		return in, err
	}
	n := d.svc.Replicas()
	keep := len(list) == n
	for i, c := range list {
		keep = keep && c.State == "running" && c.Labels[LabelVersion] == version && c.Labels[LabelArtifact] == artifact &&
			c.Labels[LabelReplica] == strconv.Itoa(i) && c.Labels["io.switchyard.port"] == strconv.Itoa(d.port(slot)+i)
	}
	if keep {
		for _, c := range list {
			in.Containers = append(in.Containers, c.ID)
		}
		in.Running, in.Reattached = true, true
		return in, d.waitReady(ctx, slot, in.Containers, false, heartbeat)
	}
	if len(list) > 0 {
		heartbeat(fmt.Sprintf("removing the %d container(s) of slot %s", len(list), slot))
		if err := d.remove(ctx, list); err != nil {
			return in, err
		}
	}
	if err := d.ensureImage(ctx, artifact, heartbeat); err != nil {
		return in, err
	}
	env, err := slotEnv(d.svc, slot, version)
	if err != nil {
		return in, err
	}
	addrs := d.svc.SlotAddrs(string(slot))
	for i := range n {
		if err := portFree(addrs[i]); err != nil {
			return in, &BadInputError{fmt.Errorf("docker: slot %s: port %d is in use by something Switchyard did not start (%v); stop it or change run.ports.%s",
				slot, d.port(slot)+i, err, slot)}
		}
	}
	for i := range n {
		id, err := d.create(ctx, slot, i, version, artifact, env)
		if err != nil {
			d.cleanup(slot)
			return in, err
		}
		in.Containers = append(in.Containers, id)
		heartbeat(fmt.Sprintf("started %s replica %d/%d of slot %s (%.12s)", version, i+1, n, slot, id))
	}
	in.Running = true
	if err := d.waitReady(ctx, slot, in.Containers, true, heartbeat); err != nil {
		// a failed start leaves nothing behind: its log is in the error
		d.cleanup(slot)
		return in, err
	}
	return in, nil
}

// cleanup removes what a failed provision started, even when its context
// has ended.
func (d *Docker) cleanup(slot rollout.Slot) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if list, err := d.slotContainers(ctx, slot); err == nil {
		_ = d.remove(ctx, list)
	}
}

func (d *Docker) ensureImage(ctx context.Context, artifact string, heartbeat func(string)) error {
	_, err := d.cli.ImageInspect(ctx, artifact)
	if err == nil {
		return nil
	}
	if !client.IsErrNotFound(err) {
		return d.engineErr("inspect "+artifact, err)
	}
	if !strings.Contains(artifact, "@sha256:") && (d.compose == nil || !strings.Contains(artifact, ":")) {
		return &BadInputError{fmt.Errorf("docker: image %s is not on this Engine and was not pushed to a registry (give docker.image a registry, like registry.example.com/%s)", artifact, d.svc.Name)}
	}
	heartbeat("pulling " + artifact)
	var auth string
	if ac, err := d.credentials(); err != nil {
		return err
	} else if ac != nil {
		auth, _ = registry.EncodeAuthConfig(*ac)
	}
	rc, err := d.cli.ImagePull(ctx, artifact, image.PullOptions{RegistryAuth: auth})
	if err != nil {
		return d.engineErr("pull "+artifact, err)
	}
	defer rc.Close()
	if err := readStream(rc, func(m streamMsg) {
		if m.Status != "" {
			heartbeat("pull: " + m.Status)
		}
	}); err != nil {
		return &BadInputError{fmt.Errorf("docker: pull %s: %v", artifact, err)}
	}
	return nil
}

func (d *Docker) create(ctx context.Context, slot rollout.Slot, i int, version, artifact string, env []string) (string, error) {
	dk := d.svc.Docker
	port := d.port(slot) + i
	name := fmt.Sprintf("%s-%s-%s-%d", d.svc.Name, d.svc.Environment, slot, i+1)
	labels := map[string]string{
		LabelService: d.svc.Name, LabelEnvironment: d.svc.Environment, LabelSlot: string(slot),
		LabelVersion: version, LabelArtifact: artifact, LabelReplica: strconv.Itoa(i), "io.switchyard.port": strconv.Itoa(port),
		"com.docker.compose.project":          "switchyard-" + d.svc.Name + "-" + d.svc.Environment,
		"com.docker.compose.service":          d.svc.Name + "-" + string(slot),
		"com.docker.compose.container-number": strconv.Itoa(i + 1),
		"com.docker.compose.oneoff":           "False",
	}
	cfg := &container.Config{Image: artifact, Labels: labels}
	host := &container.HostConfig{
		NetworkMode:   container.NetworkMode(dk.Network),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(dk.Restart)},
	}
	if dk.Network == "host" {
		cfg.Env = append([]string{"HOST=" + d.svc.Run.Host, "PORT=" + strconv.Itoa(port)}, env...)
	} else {
		cp := nat.Port(strconv.Itoa(dk.Port) + "/tcp")
		cfg.Env = append([]string{"HOST=0.0.0.0", "PORT=" + strconv.Itoa(dk.Port)}, env...)
		cfg.ExposedPorts = nat.PortSet{cp: {}}
		host.PortBindings = nat.PortMap{cp: {{HostIP: d.svc.Run.Host, HostPort: strconv.Itoa(port)}}}
	}
	for _, a := range d.svc.Run.Command {
		cfg.Cmd = append(cfg.Cmd, strings.ReplaceAll(a, "{{version}}", version))
	}
	if c := d.compose; c != nil {
		applyCompose(c, cfg, host)
	}
	resp, err := d.cli.ContainerCreate(ctx, cfg, host, nil, nil, name)
	if err != nil {
		if strings.Contains(err.Error(), "Conflict") {
			return "", &BadInputError{fmt.Errorf("docker: container name %s is taken by a container Switchyard did not label; remove it (docker rm -f %s)", name, name)}
		}
		return "", d.engineErr("create "+name, err)
	}
	if err := d.cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		return resp.ID, &BadInputError{fmt.Errorf("docker: start %s: %v", name, err)}
	}
	return resp.ID, nil
}

// waitReady waits until every replica is ready: healthy by the image's
// HEALTHCHECK when it has one, else accepting connections on its port. A
// container that exits, or turns unhealthy, fails at once with its log.
func (d *Docker) waitReady(ctx context.Context, slot rollout.Slot, ids []string, fresh bool, heartbeat func(string)) error {
	addrs := d.svc.SlotAddrs(string(slot))
	deadline := time.Now().Add(d.svc.Run.StartTimeout.D())
	for i, id := range ids {
		for n := 0; ; n++ {
			c, err := d.cli.ContainerInspect(ctx, id)
			if err != nil {
				return d.engineErr("inspect container "+id, err)
			}
			st := c.State
			// a restart policy restarts a container that exits: any restart
			// of a fresh one is an exit at start
			if st == nil || !st.Running || st.Restarting || (fresh && c.RestartCount > 0) {
				code := 0
				if st != nil {
					code = st.ExitCode
				}
				return &BadInputError{fmt.Errorf("docker: slot %s: container %s exited at start (code %d); last lines of its log:\n%s",
					slot, strings.TrimPrefix(c.Name, "/"), code, d.logTail(id, 10))}
			}
			ready := false
			if st.Health != nil {
				switch st.Health.Status {
				case container.Healthy:
					ready = true
				case container.Unhealthy:
					probe := ""
					if l := st.Health.Log; len(l) > 0 {
						probe = strings.TrimSpace(l[len(l)-1].Output)
					}
					return &BadInputError{fmt.Errorf("docker: slot %s: container %s is unhealthy by its HEALTHCHECK (%s); last lines of its log:\n%s",
						slot, strings.TrimPrefix(c.Name, "/"), probe, d.logTail(id, 10))}
				}
			} else if conn, err := net.DialTimeout("tcp", addrs[i], 200*time.Millisecond); err == nil {
				conn.Close()
				ready = true
			}
			if ready {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("docker: slot %s: container %s not ready on %s after %s (run.startTimeout); last lines of its log:\n%s",
					slot, strings.TrimPrefix(c.Name, "/"), addrs[i], d.svc.Run.StartTimeout, d.logTail(id, 10))
			}
			if n%10 == 0 {
				heartbeat(fmt.Sprintf("waiting for replica %d of slot %s on %s", i+1, slot, addrs[i]))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func (d *Docker) logTail(id string, n int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc, err := d.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
	if err != nil {
		return "  (no log: " + err.Error() + ")"
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	// the multiplexed stream prefixes each frame with an 8-byte header
	var out []string
	for len(b) >= 8 {
		size := int(b[4])<<24 | int(b[5])<<16 | int(b[6])<<8 | int(b[7])
		if size > len(b)-8 {
			size = len(b) - 8
		}
		out = append(out, strings.Split(strings.TrimRight(string(b[8:8+size]), "\n"), "\n")...)
		b = b[8+size:]
	}
	if len(out) == 0 {
		return "  (empty log)"
	}
	return d.svc.Redact("  " + strings.Join(out, "\n  "))
}

func (d *Docker) remove(ctx context.Context, list []container.Summary) error {
	timeout := int(d.svc.Run.StopTimeout.D().Seconds())
	for _, c := range list {
		if c.State == "running" {
			_ = d.cli.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &timeout})
		}
		if err := d.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !client.IsErrNotFound(err) {
			return d.engineErr("remove container "+c.ID, err)
		}
	}
	return nil
}

// Retire removes the slot's containers, then the service's images beyond
// the newest docker.keepImages that no container uses.
func (d *Docker) Retire(ctx context.Context, slot rollout.Slot) error {
	list, err := d.slotContainers(ctx, slot)
	if err != nil {
		return err
	}
	if err := d.remove(ctx, list); err != nil {
		return err
	}
	return d.pruneImages(ctx)
}

func (d *Docker) pruneImages(ctx context.Context) error {
	imgs, err := d.cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelService+"="+d.svc.Name))})
	if err != nil {
		return d.engineErr("list images", err)
	}
	used := map[string]bool{}
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelService+"="+d.svc.Name))})
	if err != nil {
		return d.engineErr("list containers", err)
	}
	for _, c := range cs {
		used[c.ImageID] = true
	}
	type img struct {
		id      string
		created time.Time
	}
	var all []img
	for _, im := range imgs {
		if used[im.ID] {
			continue
		}
		// the list's Created is in seconds: builds a second apart tie
		ins, err := d.cli.ImageInspect(ctx, im.ID)
		if err != nil {
			continue
		}
		t, _ := time.Parse(time.RFC3339Nano, ins.Created)
		all = append(all, img{im.ID, t})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].created.After(all[j].created) })
	keep := d.svc.Docker.KeepImages - len(used)
	if keep < 0 {
		keep = 0
	}
	for i := keep; i < len(all); i++ {
		if _, err := d.cli.ImageRemove(ctx, all[i].id, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !client.IsErrNotFound(err) {
			return d.engineErr("remove image "+all[i].id, err)
		}
	}
	return nil
}

// Describe counts the slot's containers.
func (d *Docker) Describe(in Instance) string {
	return fmt.Sprintf("%d container(s)", len(in.Containers))
}

// applyCompose gives a slot's container what its Compose service says.
// What the slot owns (its name, port, PORT and HOST, Switchyard's labels)
// stays Switchyard's: the file's environment comes first and the slot's
// variables after it, so the slot's win.
func applyCompose(c *compose.Service, cfg *container.Config, host *container.HostConfig) {
	cfg.Env = append(slices.Clone(c.Env), cfg.Env...)
	for k, v := range c.Labels {
		if _, ours := cfg.Labels[k]; !ours {
			cfg.Labels[k] = v
		}
	}
	cfg.User, cfg.WorkingDir = c.User, c.WorkingDir
	if len(cfg.Cmd) == 0 && len(c.Command) > 0 {
		cfg.Cmd = c.Command
	}
	if len(c.Entrypoint) > 0 {
		cfg.Entrypoint = c.Entrypoint
	}
	if h := c.Health; h != nil {
		cfg.Healthcheck = &container.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartIn, Retries: h.Retries}
	}
	host.Binds = c.Binds
	for _, v := range c.Volumes {
		host.Mounts = append(host.Mounts, mount.Mount{Type: mount.TypeVolume, Source: v.Name, Target: v.Target, ReadOnly: v.ReadOnly})
	}
	host.Resources.Memory, host.Resources.NanoCPUs = c.Memory, c.NanoCPUs
}
