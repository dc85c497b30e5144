package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"gopkg.in/yaml.v3"

	"github.com/switchyard/switchyard/internal/compose"
	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/platform"
)

// composeCmd finds Compose: the docker-compose program, or the docker CLI's plugin.
func composeCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return exec.Command(p, args...)
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return exec.Command("docker", append([]string{"compose"}, args...)...)
	}
	t.Skip("neither docker-compose nor docker compose is installed (apt-get install docker-compose); .ci/run installs it")
	return nil
}

// composeEnv is what the production compose file needs from the environment.
var composeEnv = []string{"TEMPORAL_DB_PASSWORD=from-the-environment", "TEMPORAL_JWKS_URL=https://idp.example.com/jwks.json",
	"TEMPORAL_ADMIN_TOKEN=a.jwt.token", "TEMPORAL_OIDC_ISSUER=https://idp.example.com", "TEMPORAL_OIDC_CLIENT_ID=temporal-ui",
	"TEMPORAL_OIDC_CLIENT_SECRET=s"}

func TestTemporalComposeFileParsesAndNeedsItsPassword(t *testing.T) {
	cmd := composeCmd(t, "-f", "../docker-compose.temporal.yml", "config")
	cmd.Env = append(os.Environ(), composeEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("compose config: %v\n%s", err, out)
	}
	cfg := string(out)
	for _, want := range []string{"postgres:16", "temporalio/server:1.32.1", "temporalio/admin-tools:1.32.1", "temporalio/ui:2.55.0",
		"update-schema", "SwitchyardTrafficPercent", "127.0.0.1", "TEMPORAL_AUTH_AUTHORIZER: default", "https://idp.example.com/jwks.json"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("the resolved config lacks %q", want)
		}
	}
	for _, missing := range []string{"TEMPORAL_DB_PASSWORD", "TEMPORAL_JWKS_URL"} {
		cmd = composeCmd(t, "-f", "../docker-compose.temporal.yml", "config", "-q")
		cmd.Env = append(append(os.Environ(), composeEnv...), missing+"=")
		out, err = cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), missing) {
			t.Fatalf("without %s compose should refuse, naming it; got %v:\n%s", missing, err, out)
		}
	}
}

// appCompose is the demo app described by a Compose file, as a team on
// Compose would: built from ./image, an env_file, an interpolated variable
// (from .env), a healthcheck, a read-only bind mount, a memory limit,
// labels, a user and a restart policy.
const appCompose = `services:
  app:
    build:
      context: ./image
      args:
        GREETING: hello
    image: switchyard-test/compose-app
    env_file: [app.env]
    environment:
      FROM_COMPOSE: "${COMPOSE_VAR:-default}"
      SHARED: from-environment
    healthcheck:
      test: ["CMD", "/demo-app", "healthcheck"]
      interval: 1s
      timeout: 2s
      retries: 3
    volumes:
      - ./data:/data:ro
    deploy:
      resources:
        limits:
          memory: 64M
    labels:
      team: payments
    user: "65534:65534"
    restart: unless-stopped
`

var appFiles = map[string]string{
	"app.env":        "APP_FROM_ENV_FILE=from-env-file\nSHARED=from-env-file\n",
	".env":           "COMPOSE_VAR=from-dotenv\n",
	"data/hello.txt": "mounted\n",
}

// TestComposeServiceDefinesTheSlotsContainersAndRollsOutUnderLoad, on the
// real Engine: every setting of the Compose service reaches the slot's
// container (read back with the Engine's inspect), and a rollout through
// HAProxy under load fails no request.
func TestComposeServiceDefinesTheSlotsContainersAndRollsOutUnderLoad(t *testing.T) {
	dk := dockerEngine(t)
	e := newEnv(t, opts{bake: time.Second, docker: &dockerOpts{compose: appCompose, files: appFiles}})
	e.given("v1")
	in := e.instance(e.weights().Live())
	if len(in.Containers) != 1 {
		t.Fatalf("the live slot runs %d containers, want 1", len(in.Containers))
	}
	c, err := dk.ContainerInspect(context.Background(), in.Containers[0])
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(e.file)
	for _, want := range []string{"APP_FROM_ENV_FILE=from-env-file", "FROM_COMPOSE=from-dotenv", "SHARED=from-environment", "VERSION=v1"} {
		if !slices.Contains(c.Config.Env, want) {
			t.Errorf("the container's environment lacks %s: %v", want, c.Config.Env)
		}
	}
	if h := c.Config.Healthcheck; h == nil || strings.Join(h.Test, " ") != "CMD /demo-app healthcheck" || h.Interval != time.Second || h.Retries != 3 {
		t.Errorf("healthcheck: %+v", h)
	}
	if want := filepath.Join(dir, "data") + ":/data:ro"; !slices.Contains(c.HostConfig.Binds, want) {
		t.Errorf("binds %v, want %s", c.HostConfig.Binds, want)
	}
	if c.HostConfig.Memory != 64<<20 {
		t.Errorf("memory limit %d, want %d", c.HostConfig.Memory, 64<<20)
	}
	if c.Config.User != "65534:65534" || c.Config.Labels["team"] != "payments" || c.HostConfig.RestartPolicy.Name != "unless-stopped" {
		t.Errorf("user %q, label team %q, restart %q", c.Config.User, c.Config.Labels["team"], c.HostConfig.RestartPolicy.Name)
	}
	if !strings.HasPrefix(c.Config.Image, "sha256:") && !strings.HasPrefix(c.Config.Image, "switchyard-test/compose-app") {
		t.Errorf("image %s, want the build of switchyard-test/compose-app", c.Config.Image)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("container %s: env_file, .env interpolation, healthcheck %v every %s, bind %v, memory %d MiB, user %s, label team=%s",
		strings.TrimPrefix(c.Name, "/"), c.Config.Healthcheck.Test, c.Config.Healthcheck.Interval, c.HostConfig.Binds, c.HostConfig.Memory>>20, c.Config.User, c.Config.Labels["team"])

	gen := load.Start(e.url, 100, 2*time.Minute)
	run := e.start("v2")
	e.promotedUnderLoad(run, gen, 300)
}

// TestComposeFilesASlotCannotHonourAreRefusedBeforeAnythingStarts: a
// broken Compose file, a container_name, a fixed host port under host
// networking and a key the platform does not run are each refused by
// `switchyard validate` and `switchyard deploy` (exit 2) with the file, the
// line and the key; no container was started.
func TestComposeFilesASlotCannotHonourAreRefusedBeforeAnythingStarts(t *testing.T) {
	dk := dockerEngine(t)
	e := newEnv(t, opts{docker: &dockerOpts{compose: appCompose, files: appFiles}})
	compose := filepath.Join(filepath.Dir(e.file), "compose.yml")
	for _, c := range []struct {
		name, edit string
		want       []string
	}{
		{"broken YAML", "services:\n  app:\n    image: [unclosed\n", []string{"compose file compose.yml", "yaml"}},
		{"container_name", strings.Replace(appCompose, "    user:", "    container_name: api\n    user:", 1),
			[]string{"compose file compose.yml line 25: services.app.container_name: Switchyard names each slot's containers"}},
		{"fixed host port", strings.Replace(appCompose, "    user:", "    ports: [\"8080:8080\"]\n    user:", 1),
			[]string{"compose file compose.yml", "services.app.ports: 8080:8080 publishes a fixed host port"}},
		{"unsupported key", strings.Replace(appCompose, "    user:", "    privileged: true\n    user:", 1),
			[]string{"compose file compose.yml line 25: services.app.privileged: not supported by the docker platform"}},
		{"no such service", strings.Replace(appCompose, "  app:", "  web:", 1), []string{"compose file compose.yml", "services.app: no such service"}},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "-"), func(t *testing.T) {
			if err := os.WriteFile(compose, []byte(c.edit), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"validate", e.file}, {"deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v1"}} {
				out, code := cli(t, e, args...)
				if code != 2 {
					t.Fatalf("%s: exit %d, want 2:\n%s", args[0], code, out)
				}
				for _, w := range c.want {
					if !strings.Contains(out, w) {
						t.Fatalf("%s: the error lacks %q:\n%s", args[0], w, out)
					}
				}
				t.Logf("%s: exit 2: %s", args[0], strings.TrimSpace(out))
			}
		})
	}
	list, err := dk.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", platform.LabelService+"="+e.svc.Name))})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("refused deploys started %d containers", len(list))
	}
}

// TestComposeValuesAgreeWithDockerComposeConfig: what Switchyard reads of
// the Compose service is what `docker-compose config` resolves from the
// same file (environment with env_file and .env, build, healthcheck,
// volumes, memory, labels, user, restart).
func TestComposeValuesAgreeWithDockerComposeConfig(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"compose.yml": appCompose, "app.env": appFiles["app.env"], ".env": appFiles[".env"], "data/hello.txt": "x"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "image"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := composeCmd(t, "-f", filepath.Join(dir, "compose.yml"), "config")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-compose config: %v", err)
	}
	var theirs struct {
		Services map[string]struct {
			Build struct {
				Context string
				Args    map[string]string
			}
			Environment map[string]string
			Healthcheck struct {
				Test              []string
				Interval, Timeout string
				Retries           int
			}
			Image   string
			Labels  map[string]string
			Restart string
			User    string
			Volumes []any
			Deploy  struct {
				Resources struct{ Limits struct{ Memory string } }
			}
		}
	}
	if err := yaml.Unmarshal(out, &theirs); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	them := theirs.Services["app"]
	ours, err := compose.Load(context.Background(), dir, "compose.yml", "app", "host")
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for k, v := range them.Environment {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	vol := fmt.Sprint(them.Volumes[0])
	for _, c := range []struct{ what, ours, theirs string }{
		{"environment", strings.Join(ours.Env, " "), strings.Join(env, " ")},
		{"image", ours.Image, them.Image},
		{"build context", ours.Build.Context, them.Build.Context},
		{"build args", fmt.Sprint(ours.Build.Args), fmt.Sprint(them.Build.Args)},
		{"healthcheck test", strings.Join(ours.Health.Test, " "), strings.Join(them.Healthcheck.Test, " ")},
		{"healthcheck interval", ours.Health.Interval.String(), them.Healthcheck.Interval},
		{"healthcheck timeout", ours.Health.Timeout.String(), them.Healthcheck.Timeout},
		{"healthcheck retries", fmt.Sprint(ours.Health.Retries), fmt.Sprint(them.Healthcheck.Retries)},
		{"volume", strings.Join(ours.Binds, " "), vol},
		{"memory", fmt.Sprintf("%dM", ours.Memory>>20), them.Deploy.Resources.Limits.Memory},
		{"labels", fmt.Sprint(ours.Labels), fmt.Sprint(them.Labels)},
		{"user", ours.User, them.User},
		{"restart", ours.Restart, them.Restart},
	} {
		if c.ours != c.theirs {
			t.Errorf("%s: ours %q, docker-compose config %q", c.what, c.ours, c.theirs)
		} else {
			t.Logf("%s: %s", c.what, c.ours)
		}
	}
}
