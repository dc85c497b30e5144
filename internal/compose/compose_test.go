package compose

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
