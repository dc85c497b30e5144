package test

import (
	"context"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/platform"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// dockerOpts makes a test service run on the docker platform: its image is
// the demo app FROM scratch, built from a context the build command fills
// with the good or the bad static binary, as the version says.
type dockerOpts struct {
	replicas int
	registry *testRegistry // push here; nil: local images only
	root     bool          // a Dockerfile without USER
	extra    string        // more lines under docker:
	runEnv   string        // run.env, as a YAML flow mapping
	// compose, when set, is a Compose file (its service "app" builds ./image)
	// that defines the containers: written as compose.yml, named by docker.compose
	compose string
	files   map[string]string // more files beside it (env_file, bind-mounted data), by path
}

var (
	staticOnce sync.Once
	staticErr  error
)

// dockerEngine skips the test, saying why, when no Engine answers, and
// builds the static demo binaries the images are made of.
func dockerEngine(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = c.Ping(ctx)
	}
	if err != nil {
		t.Skipf("no Docker Engine answers (%v): .ci/run starts dockerd --bridge=none --iptables=false", err)
	}
	t.Cleanup(func() { c.Close() })
	staticOnce.Do(func() {
		for _, b := range [][]string{
			{"build", "-o", filepath.Join(bins, "static", "good", "demo-app"), "../cmd/demo-app"},
			{"build", "-ldflags", "-X main.errorRate=0.5", "-o", filepath.Join(bins, "static", "bad", "demo-app"), "../cmd/demo-app"},
		} {
			cmd := exec.Command("go", b...)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				staticErr = fmt.Errorf("go %s: %v\n%s", strings.Join(b, " "), err, out)
				return
			}
		}
	})
	if staticErr != nil {
		t.Fatal(staticErr)
	}
	return c
}

// dockerYAML writes the build context and returns the spec's platform,
// build, docker and run sections (ports follow).
func dockerYAML(t testing.TB, dir string, o *dockerOpts) string {
	t.Helper()
	ctxDir := filepath.Join(dir, "image")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	user := "USER 65534:65534\n"
	if o.root {
		user = ""
	}
	dockerfile := "FROM scratch\nCOPY demo-app /demo-app\n" + user +
		"EXPOSE 8080\nHEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD [\"/demo-app\", \"healthcheck\"]\nENTRYPOINT [\"/demo-app\"]\n"
	for name, body := range map[string]string{
		"Dockerfile":    dockerfile,
		".dockerignore": "*\n!demo-app\n!Dockerfile\n",
		"notes.txt":     "left out by .dockerignore\n",
	} {
		if err := os.WriteFile(filepath.Join(ctxDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// the build command puts the version's binary in the context: v3 and
	// bad-* are the bad build
	prepare := fmt.Sprintf(`#!/bin/sh
set -e
case "$VERSION" in
  v3|bad-*) cp %s/static/bad/demo-app image/demo-app ;;
  *) cp %s/static/good/demo-app image/demo-app ;;
esac
`, bins, bins)
	if err := os.WriteFile(filepath.Join(dir, "prepare.sh"), []byte(prepare), 0o755); err != nil {
		t.Fatal(err)
	}
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	repo := "switchyard-test/" + strings.Trim(name, "-")
	creds := ""
	if o.registry != nil {
		repo = o.registry.host + "/" + repo
		creds = "\n  usernameEnv: TEST_REGISTRY_USER\n  passwordEnv: TEST_REGISTRY_PASSWORD"
		t.Setenv("TEST_REGISTRY_USER", o.registry.user)
		t.Setenv("TEST_REGISTRY_PASSWORD", o.registry.password)
	}
	replicas := max(o.replicas, 1)
	env := ""
	if o.runEnv != "" {
		env = "\n  env: " + o.runEnv
	}
	if o.compose != "" {
		files := map[string]string{"compose.yml": o.compose}
		maps.Copy(files, o.files)
		for name, body := range files {
			path := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return fmt.Sprintf(`platform: docker
build:
  command: ["./prepare.sh"]
docker:
  compose: {file: compose.yml, service: app}
  replicas: %d
  keepImages: 1%s
run:
  startTimeout: 20s
  stopTimeout: 5s%s`, replicas, o.extra, env)
	}
	return fmt.Sprintf(`platform: docker
build:
  command: ["./prepare.sh"]
docker:
  image: %s
  context: image
  replicas: %d
  keepImages: 1%s%s
run:
  startTimeout: 20s
  stopTimeout: 5s%s`, repo, replicas, creds, o.extra, env)
}

// testRegistry is a real OCI registry (go-containerregistry's) on
// 127.0.0.1, behind basic auth, in this process.
type testRegistry struct {
	host, user, password string
}

func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{user: "ci", password: "s3cret-" + fmt.Sprint(time.Now().UnixNano())}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.host = l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		u, p, ok := req.BasicAuth()
		if !ok || u != r.user || p != r.password {
			w.Header().Set("WWW-Authenticate", `Basic realm="switchyard-test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, req)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return r
}

// slotContainers counts the containers Switchyard labelled for a slot.
func slotContainers(t *testing.T, c *client.Client, svc *spec.Service, slot rollout.Slot) []container.Summary {
	t.Helper()
	list, err := c.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", platform.LabelService+"="+svc.Name),
		filters.Arg("label", platform.LabelEnvironment+"="+svc.Environment),
		filters.Arg("label", platform.LabelSlot+"="+string(slot)))})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// removeImages deletes a test service's images at the end.
func removeImages(t *testing.T, c *client.Client, svc *spec.Service) {
	t.Cleanup(func() {
		imgs, _ := c.ImageList(context.Background(), image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", platform.LabelService+"="+svc.Name))})
		for _, im := range imgs {
			_, _ = c.ImageRemove(context.Background(), im.ID, image.RemoveOptions{Force: true, PruneChildren: true})
		}
	})
}

func TestDockerPushNeedsTheRightCredentials(t *testing.T) {
	c := dockerEngine(t)
	reg := startRegistry(t)
	e := newEnv(t, opts{docker: &dockerOpts{registry: reg}, noWorker: true})
	removeImages(t, c, e.svc)
	prep := exec.Command("./prepare.sh")
	prep.Dir, prep.Env = filepath.Dir(e.file), append(os.Environ(), "VERSION=v1")
	if out, err := prep.CombinedOutput(); err != nil {
		t.Fatalf("prepare: %v\n%s", err, out)
	}

	t.Setenv("TEST_REGISTRY_PASSWORD", "wrong-password")
	p, err := platform.NewDocker(e.svc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Build(context.Background(), "v1", nil)
	if err == nil || !strings.Contains(err.Error(), "refused the credentials") || strings.Contains(err.Error(), "wrong-password") {
		t.Fatalf("a wrong password: want a clear refusal that does not show it, got %v", err)
	}
	t.Logf("wrong credentials: %v", err)

	t.Setenv("TEST_REGISTRY_PASSWORD", reg.password)
	artifact, err := p.Build(context.Background(), "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	repo := e.svc.Docker.Image
	if !strings.HasPrefix(artifact, repo+"@sha256:") {
		t.Fatalf("artifact %q: want %s@sha256:...", artifact, repo)
	}
	digest := strings.TrimPrefix(artifact, repo+"@")
	req, _ := http.NewRequest(http.MethodHead, "http://"+reg.host+"/v2/"+strings.TrimPrefix(repo, reg.host+"/")+"/manifests/"+digest, nil)
	req.SetBasicAuth(reg.user, reg.password)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the registry has no manifest %s: %s", digest, resp.Status)
	}
	t.Logf("pushed %s; the registry answers HEAD manifest: %s", artifact, resp.Status)

	// a host that did not build it pulls it by digest
	if _, err := c.ImageRemove(context.Background(), artifact, image.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ImageInspect(context.Background(), artifact); err == nil {
		t.Fatal("the image is still on the Engine after removing it")
	}
	in, err := p.Provision(context.Background(), rollout.Blue, "v1", artifact, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Retire(context.Background(), rollout.Blue) })
	if len(in.Containers) != 1 || !in.Running {
		t.Fatalf("after provision: %+v", in)
	}
	body := get(t, "http://"+in.Addr+"/version")
	if strings.TrimSpace(body) != "v1" {
		t.Fatalf("the pulled image answers /version with %q", body)
	}
	ins, err := c.ContainerInspect(context.Background(), in.Containers[0])
	if err != nil {
		t.Fatal(err)
	}
	if ins.Config.Image != artifact {
		t.Fatalf("the container runs %q, want the digest %q", ins.Config.Image, artifact)
	}
}

// reasonLine picks the line of a CLI's output that says why it ended.
func reasonLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "failed") || strings.Contains(l, "refused") || strings.Contains(l, "error") {
			return strings.TrimSpace(l)
		}
	}
	return out
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestDockerRolloutUnderLoadFailsNoRequestAndABadVersionRollsBack(t *testing.T) {
	c := dockerEngine(t)
	reg := startRegistry(t)
	e := newEnv(t, opts{docker: &dockerOpts{replicas: 2, registry: reg}})
	removeImages(t, c, e.svc)
	e.given("v1")
	if n := len(slotContainers(t, c, e.svc, rollout.Blue)); n != 2 {
		t.Fatalf("blue runs %d containers, want 2 replicas", n)
	}
	o := e.deployUnderLoad("v1", "v2")
	if !strings.HasPrefix(o.Status.Artifact, e.svc.Docker.Image+"@sha256:") {
		t.Fatalf("the rollout ran %q, want the pushed digest", o.Status.Artifact)
	}
	green := slotContainers(t, c, e.svc, rollout.Green)
	if len(green) != 2 {
		t.Fatalf("green runs %d containers, want 2", len(green))
	}
	for _, ct := range green {
		if ct.Image != o.Status.Artifact || ct.Labels[platform.LabelVersion] != "v2" {
			t.Fatalf("green container %s runs %s (%s), want %s v2", ct.ID[:12], ct.Image, ct.Labels[platform.LabelVersion], o.Status.Artifact)
		}
	}
	if n := len(slotContainers(t, c, e.svc, rollout.Blue)); n != 0 {
		t.Fatalf("the retired slot still has %d containers", n)
	}
	for _, ch := range o.Status.Checks {
		if strings.HasPrefix(ch.Name, "image ") && !ch.Passed {
			t.Fatalf("gate %s failed: %s", ch.Name, ch.Detail)
		}
	}

	gen := load.Start(e.url, 100, 2*time.Minute)
	o = e.deploy("v3")
	res := gen.Stop()
	t.Logf("v3 under load: %s", res)
	if o.Kind != "RolledBack" || !strings.Contains(o.Reason, "analysis failed") {
		t.Fatalf("v3: want rolled back by analysis, got %q: %s", o.Kind, o.Reason)
	}
	if w := e.weights(); w != (rollout.Weights{Green: 100}) {
		t.Fatalf("after the rollback the router says %s, want green=100", w)
	}
	t.Logf("v3: %s", o.Reason)
}

func TestDockerWorkerKilledMidRolloutStartsNoDuplicateContainers(t *testing.T) {
	c := dockerEngine(t)
	e := newEnv(t, opts{docker: &dockerOpts{replicas: 2}, bake: 3 * time.Second, noWorker: true})
	removeImages(t, c, e.svc)
	w := startWorker(t, e)
	e.given("v1")
	gen := load.Start(e.url, 100, 3*time.Minute)
	run := e.start("v2")
	e.waitFor("the bake of step 2", func(st *starterStatus) bool { return st.Step == 1 && !st.BakeEndsAt.IsZero() })
	before := slotContainers(t, c, e.svc, rollout.Green)
	killAndRestart(t, e, w, "during the bake of step 2")
	e.promotedUnderLoad(run, gen, 500)
	after := slotContainers(t, c, e.svc, rollout.Green)
	ids := func(l []container.Summary) string {
		var s []string
		for _, ct := range l {
			s = append(s, ct.ID[:12])
		}
		return strings.Join(s, ",")
	}
	if len(before) != 2 || ids(before) != ids(after) {
		t.Fatalf("green's containers changed across the crash: before %s, after %s", ids(before), ids(after))
	}
	provisions := 0
	h := history(t, e, run)
	record(t, h, "deployment_docker_gated_after_worker_crash.json")
	for _, ev := range h.Events {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.ActivityType.GetName() == "Provision" {
			provisions++
		}
	}
	if provisions != 1 {
		t.Fatalf("Provision was scheduled %d times, want once", provisions)
	}
	t.Logf("green kept its 2 containers (%s) across the crash; Provision scheduled once", ids(after))
}

func TestDockerGatesStopTheRolloutBeforeAnyContainerStarts(t *testing.T) {
	c := dockerEngine(t)
	for _, tc := range []struct {
		name string
		o    dockerOpts
		gate string
		want string
	}{
		{"failing command gate", dockerOpts{}, `gates: [{name: scan, command: ["sh", "-c", "echo 'CVE-2099-0001 critical' >&2; exit 3"]}]`, "gate scan: exit status 3"},
		{"image runs as root", dockerOpts{root: true}, "", "image user: runs as root"},
		{"image too big", dockerOpts{extra: "\n  maxImageSizeMB: 1"}, "", "image size"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			e := newEnv(t, opts{docker: &tc.o, extra: tc.gate})
			removeImages(t, c, e.svc)
			out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v1")
			expect(t, out, code, 4, tc.want)
			for _, slot := range []rollout.Slot{rollout.Blue, rollout.Green} {
				if n := len(slotContainers(t, c, e.svc, slot)); n != 0 {
					t.Fatalf("a failed gate left %d containers in slot %s", n, slot)
				}
			}
			t.Logf("%s: refused before provision", tc.name)
		})
	}
}

func TestDockerBadInput(t *testing.T) {
	c := dockerEngine(t)
	reg := startRegistry(t)
	e := newEnv(t, opts{docker: &dockerOpts{registry: reg}})
	removeImages(t, c, e.svc)
	gen := liveBlue(t, e)
	dir := filepath.Dir(e.file)
	src, err := os.ReadFile(e.file)
	if err != nil {
		t.Fatal(err)
	}
	variant := func(old, new string) string {
		if !strings.Contains(string(src), old) {
			t.Fatalf("the spec has no %q", old)
		}
		path := filepath.Join(dir, fmt.Sprintf("variant-%d.yaml", time.Now().UnixNano()))
		if err := os.WriteFile(path, []byte(strings.Replace(string(src), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	if err := os.WriteFile(filepath.Join(dir, "image", "Broken.dockerfile"), []byte("FROM scratch\nCOPY no-such-file /x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		file   string
		env    []string
		code   int
		expect []string
	}{
		{"Dockerfile missing", variant("context: image", "context: image\n  dockerfile: Nope.dockerfile"), nil, 4, []string{"docker.dockerfile: Nope.dockerfile not found"}},
		{"build failing", variant("context: image", "context: image\n  dockerfile: Broken.dockerfile"), nil, 4, []string{"build", "failed", "no-such-file"}},
		{"push denied", e.file, []string{"TEST_REGISTRY_PASSWORD=wrong"}, 4, []string{"refused the credentials"}},
		{"container exits at start", variant("stopTimeout: 5s", "stopTimeout: 5s\n  env: {DEMO_ERROR_RATE: \"2\"}"), nil, 4, []string{"exited at start", "DEMO_ERROR_RATE must be a fraction"}},
		{"engine unreachable", e.file, []string{"DOCKER_HOST=unix:///nonexistent/docker.sock"}, 4, []string{"cannot reach the Docker Engine"}},
		{"credential variables missing", variant("usernameEnv: TEST_REGISTRY_USER", "usernameEnv: NOPE_USER"), nil, 4, []string{"docker.usernameEnv: the worker has no environment variable NOPE_USER"}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			for _, kv := range tc.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v) // the worker runs in this process
			}
			out, code := cli(t, e, "deploy", e.svc.Name, "-f", tc.file, "--env", "test", "--version", "v2")
			expect(t, out, code, tc.code, tc.expect...)
			if strings.Contains(out, reg.password) {
				t.Fatalf("the output shows the registry password:\n%s", out)
			}
			if n := len(slotContainers(t, c, e.svc, rollout.Green)); n != 0 {
				t.Fatalf("the failed attempt left %d containers in the idle slot", n)
			}
			if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
				t.Fatalf("router changed to %s", w)
			}
			t.Logf("%s: exit %d: %s", tc.name, code, reasonLine(out))
		})
	}
	t.Run("port-already-taken", func(t *testing.T) {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", e.svc.Run.Ports.Green))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v2")
		expect(t, out, code, 4, fmt.Sprintf("port %d is in use", e.svc.Run.Ports.Green))
		if n := len(slotContainers(t, c, e.svc, rollout.Green)); n != 0 {
			t.Fatalf("the failed attempt left %d containers", n)
		}
	})
	res := gen.Stop()
	requireNoFailures(t, res, 40)
	if n := len(slotContainers(t, c, e.svc, rollout.Blue)); n != 1 {
		t.Fatalf("the live slot has %d containers, want its 1", n)
	}
}
