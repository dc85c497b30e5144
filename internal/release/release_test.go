package release

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

func serviceSpec(name string, port int) string {
	return strings.NewReplacer("NAME", name, "PORT2", strconv.Itoa(port+1), "PORT", strconv.Itoa(port)).Replace(`service: NAME
run:
  command: ["./NAME"]
  ports: {blue: PORT, green: PORT2}
router: {kind: haproxy, haproxy: {socket: /run/haproxy.sock}}
environments:
  staging: {}
  production: {}
`)
}

const shop = `release: shop
services:
  backend:  {spec: backend.yaml}
  frontend: {spec: frontend.yaml, after: [backend]}
  admin:    {spec: admin.yaml}
environments:
  - name: staging
  - name: production
    approval: {required: true, timeout: 4h, onTimeout: abort}
    soak: 30m
windows:
  allow: ["Mon-Fri 09:00-16:00 Europe/Berlin"]
  freeze: ["2026-12-20/2027-01-04"]
`

// dir writes the three service specs and returns the directory.
func dir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for i, n := range []string{"backend", "frontend", "admin"} {
		if err := os.WriteFile(filepath.Join(d, n+".yaml"), []byte(serviceSpec(n, 9100+10*i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func parse(t *testing.T, src string) (*Release, error) {
	t.Helper()
	d := dir(t)
	path := filepath.Join(d, "release.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(path)
}

func TestAReleaseRunsItsServicesInDependencyLevels(t *testing.T) {
	r, err := parse(t, shop)
	if err != nil {
		t.Fatal(err)
	}
	got := r.Levels()
	if len(got) != 2 || strings.Join(got[0], ",") != "admin,backend" || strings.Join(got[1], ",") != "frontend" {
		t.Fatalf("levels: %v", got)
	}
	prod, i := r.Environment("production")
	if i != 1 || !prod.Approval.Required || prod.Approval.Timeout.D() != 4*time.Hour || prod.Soak.D() != 30*time.Minute {
		t.Fatalf("production: %+v", prod)
	}
	specs, err := r.ResolveSpecs("production")
	if err != nil || specs["frontend"].Name != "frontend" || specs["frontend"].Environment != "production" {
		t.Fatalf("specs: %v %v", specs, err)
	}
}

func TestReleaseProblemsNameTheirLines(t *testing.T) {
	for _, c := range []struct{ name, from, to, want string }{
		{"a cycle", "backend:  {spec: backend.yaml}", "backend:  {spec: backend.yaml, after: [frontend]}",
			"release.yaml:3: services.backend.after: a cycle: backend → frontend → backend"},
		{"an unknown service", "after: [backend]", "after: [backnd]",
			`release.yaml:4: services.frontend.after[0]: unknown service "backnd" (the release has admin, backend, frontend)`},
		{"a missing spec", "{spec: admin.yaml}", "{spec: nope.yaml}", "release.yaml:5: services.admin.spec: no spec at"},
		{"an unknown time zone", "Europe/Berlin", "Europe/Berlinn", `release.yaml:12: windows.allow[0]: "Mon-Fri 09:00-16:00 Europe/Berlinn": unknown time zone "Europe/Berlinn"`},
		{"a bad freeze", "2026-12-20/2027-01-04", "2027-01-04/2026-12-20", "release.yaml:13: windows.freeze[0]:"},
		{"a bad timeout action", "onTimeout: abort", "onTimeout: wait", `release.yaml:9: environments[1].approval.onTimeout: unknown action "wait" (use abort, rollback or proceed)`},
		{"an unknown field", "soak: 30m", "soak: 30m\n    soka: 1m", `release.yaml:11: unknown field "soka"`},
		{"a mistyped value", "required: true", "required: sure", `release.yaml:9: environments[1].approval.required: "sure" is not true or false`},
		{"an environment a spec lacks", "- name: staging", "- name: qa", "services.admin.spec: admin.yaml in environment qa: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(shop, c.from) {
				t.Fatalf("the fixture has no %q", c.from)
			}
			_, err := parse(t, strings.Replace(shop, c.from, c.to, 1))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want %q, got:\n%v", c.want, err)
			}
			var ps spec.Problems
			if !strings.Contains(err.Error(), "release.yaml:") || !errors.As(err, &ps) {
				t.Fatalf("want line-numbered Problems, got %T %v", err, err)
			}
		})
	}
}

func TestTheShippedReleaseIsValid(t *testing.T) {
	r, err := Load("../../deployments/shop.release.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if l := r.Levels(); len(l) != 2 || l[0][0] != "shop-backend" || l[1][0] != "shop-frontend" {
		t.Fatalf("levels: %v", l)
	}
}

// A release can name a Compose file's services directly: each service's
// spec (platform docker, no container definition of its own) gets its
// name and docker.compose from the release; a Compose service the file
// does not have is a problem naming the release's field.
func TestAReleaseNamesAComposeFilesServices(t *testing.T) {
	d := t.TempDir()
	files := map[string]string{
		"docker-compose.yml": "services:\n  web:\n    build: {context: .}\n    environment: {A: b}\n  worker:\n    build: {context: .}\n",
		"web.yaml":           "service: web\nplatform: docker\nrun: {ports: {blue: 9501, green: 9502}}\nrouter: {kind: haproxy, haproxy: {socket: /tmp/h.sock, backend: web}}\nenvironments: {staging: {}}\n",
		"worker.yaml":        "service: worker\nplatform: docker\nrun: {ports: {blue: 9511, green: 9512}}\nrouter: {kind: haproxy, haproxy: {socket: /tmp/h.sock, backend: worker}}\nenvironments: {staging: {}}\n",
		"shop.release.yaml": `release: shop
services:
  web: {spec: web.yaml, compose: {file: docker-compose.yml}}
  worker: {spec: worker.yaml, compose: {file: docker-compose.yml, service: worker}, after: [web]}
environments:
  - name: staging
`,
	}
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(d, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Load(filepath.Join(d, "shop.release.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := r.ResolveSpecs("staging")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"web", "worker"} {
		c := specs[n].Docker.Compose
		if c == nil || c.Service != n || c.File != filepath.Join(d, "docker-compose.yml") || specs[n].Name != n {
			t.Fatalf("%s: %+v", n, c)
		}
	}
	bad := strings.Replace(files["shop.release.yaml"], "service: worker", "service: cron", 1)
	if err := os.WriteFile(filepath.Join(d, "shop.release.yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(filepath.Join(d, "shop.release.yaml"))
	if err == nil || !strings.Contains(err.Error(), "services.worker.compose") || !strings.Contains(err.Error(), "services.cron: no such service (the file has web, worker)") {
		t.Fatalf("a missing Compose service: %v", err)
	}
	t.Log(err)
}
