package compose

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/spec"
)

func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// extends, a profile, a build target, a named volume, cpus and a bridge
// port all come through; the image's tag is dropped (the version is the tag).
func TestLoadReadsExtendsProfilesTargetVolumesAndThePort(t *testing.T) {
	dir := write(t, map[string]string{"compose.yml": `services:
  base:
    image: base
    environment: {FROM_BASE: "yes"}
    labels: {team: payments}
  api:
    extends: base
    profiles: [prod]
    image: registry.example.com/team/api:latest
    build: {context: ., target: runtime, args: {MODE: "${MODE:-fast}"}}
    ports: ["8080"]
    volumes: [cache:/cache]
    cpus: 0.5
    command: ["/demo-app", "--serve"]
volumes:
  cache: {}
`})
	s, err := Load(context.Background(), dir, "compose.yml", "api", "bridge")
	if err != nil {
		t.Fatal(err)
	}
	if s.Image != "registry.example.com/team/api" || s.Build.Target != "runtime" || s.Build.Args["MODE"] != "fast" || s.Port != 8080 ||
		s.NanoCPUs != 5e8 || len(s.Volumes) != 1 || s.Volumes[0].Target != "/cache" || strings.Join(s.Env, ",") != "FROM_BASE=yes" ||
		s.Labels["team"] != "payments" || strings.Join(s.Command, " ") != "/demo-app --serve" {
		t.Fatalf("%+v", s)
	}
}

// What a slot cannot honour is refused with the file's line and the key.
func TestLoadRefusesWhatASlotCannotHonour(t *testing.T) {
	for _, c := range []struct{ name, service, network, want string }{
		{"digest", "  api:\n    image: api@sha256:0123\n", "host", "services.api.image: \"api@sha256:0123\" is pinned by digest"},
		{"tmpfs", "  api:\n    image: api\n    volumes: [{type: tmpfs, target: /tmp}]\n", "host", "services.api.volumes: a tmpfs volume (/tmp) is not supported"},
		{"replicas", "  api:\n    image: api\n    deploy: {replicas: 3}\n", "host", "line 4: services.api.deploy: deploy.replicas: use docker.replicas"},
		{"network", "  api:\n    image: api\n    network_mode: bridge\n", "host", "line 4: services.api.network_mode: \"bridge\": a slot runs on the network docker.network names (host)"},
		{"depends_on", "  api:\n    image: api\n    depends_on: [db]\n  db:\n    image: db\n", "host", "line 4: services.api.depends_on: a slot starts on its own"},
		{"no image", "  api:\n    environment: {A: b}\n", "host", "service \"api\" has neither an image nor a build context"},
		{"host port", "  api:\n    image: api\n    ports: [\"127.0.0.1:9000:8080\"]\n", "host", "services.api.ports: 9000:8080 publishes a fixed host port"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := write(t, map[string]string{"compose.yml": "services:\n" + c.service})
			_, err := Load(context.Background(), dir, "compose.yml", "api", c.network)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "compose file compose.yml") {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	dir := write(t, map[string]string{"compose.yml": "services:\n  api:\n    image: api\n    env_file: [missing.env]\n"})
	if _, err := Load(context.Background(), dir, "compose.yml", "api", "host"); err == nil || !strings.Contains(err.Error(), "missing.env") {
		t.Fatalf("a missing env_file: %v", err)
	}
}

// What would hand a container the host is refused unless the worker's
// policy allows it: root (which needs docker.allowRoot, as the image gate
// does, and with a policy its compose.allowRoot too), binds of / or the Docker socket, an
// env_file outside the spec's directory (the worker's own secrets).
func TestAComposeServiceMayNotTakeTheHostUnlessTheWorkerAllowsIt(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "worker.env"), []byte("AWS_SECRET_ACCESS_KEY=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, svc, want string }{
		{"root", "user: \"0\"", `line 4: services.api.user: "0" runs the containers as root`},
		{"root uid with a group", "user: \"0:1000\"", `runs the containers as root`},
		{"root by name", "user: root:root", `services.api.user: "root:root" runs the containers as root`},
		{"slash", "volumes: [\"/:/host\"]", "services.api.volumes: a bind of / gives the container the host"},
		{"socket", "volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]", "a bind of /var/run/docker.sock gives the container the host"},
		{"env_file", "env_file: [" + filepath.Join(outside, "worker.env") + "]", "services.api.env_file: " + filepath.Join(outside, "worker.env") + " is outside the spec's directory"},
	}
	for _, c := range cases {
		dir := write(t, map[string]string{"compose.yml": "services:\n  api:\n    image: api\n    " + c.svc + "\n"})
		s := &spec.Service{Dir: dir, Docker: spec.Docker{Network: "host", Compose: &spec.Compose{File: "compose.yml", Service: "api"}}}
		_, err := LoadFor(s)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
		s.Docker.AllowRoot = true
		s.Reach = &spec.Reach{Compose: spec.ComposeReach{AllowRoot: true, AllowHostBinds: true, AllowEnvFileOutside: true}}
		if _, err := LoadFor(s); err != nil {
			t.Errorf("%s, allowed by the worker's policy: %v", c.name, err)
		}
	}
	dir := write(t, map[string]string{"compose.yml": "services:\n  api:\n    image: api\n    user: \"0\"\n"})
	s := &spec.Service{Dir: dir, Docker: spec.Docker{Network: "host", Compose: &spec.Compose{File: "compose.yml", Service: "api"}},
		Reach: &spec.Reach{Compose: spec.ComposeReach{AllowRoot: true}}}
	if _, err := LoadFor(s); err == nil || !strings.Contains(err.Error(), "set docker.allowRoot") {
		t.Errorf("root allowed by the policy but not the spec: %v", err)
	}
}
