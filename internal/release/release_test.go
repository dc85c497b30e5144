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

func TestWindowsOpenAndCloseInTheirTimeZone(t *testing.T) {
	w, err := ParseWindow("Mon-Fri 09:00-16:00 Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		at   string
		in   bool
		next string
	}{
		{"2026-12-01 10:00", true, "2026-12-01 10:00"},  // a Tuesday morning
		{"2026-12-01 16:00", false, "2026-12-02 09:00"}, // closes at 16:00 sharp
		{"2026-12-04 17:30", false, "2026-12-07 09:00"}, // Friday evening → Monday
		{"2026-12-05 12:00", false, "2026-12-07 09:00"}, // Saturday
		{"2026-03-27 18:00", false, "2026-03-30 09:00"}, // over the change to summer time
	} {
		if got := w.Contains(at(c.at)); got != c.in {
			t.Errorf("%s: in window %v, want %v", c.at, got, c.in)
		}
		if got := w.NextOpen(at(c.at)); !got.Equal(at(c.next)) {
			t.Errorf("%s: next open %s, want %s", c.at, got.In(berlin), c.next)
		}
	}
	// the same instant in UTC: 08:30 UTC is 09:30 in Berlin in winter
	if !w.Contains(time.Date(2026, 12, 1, 8, 30, 0, 0, time.UTC)) {
		t.Error("08:30 UTC on a Tuesday in December is inside 09:00-16:00 Berlin")
	}
	ws := Windows{Allow: []Window{w}}
	if ok, next := ws.Allowed(at("2026-12-05 12:00")); ok || !next.Equal(at("2026-12-07 09:00")) {
		t.Errorf("Allowed on a Saturday: %v %s", ok, next)
	}
	if ok, _ := (Windows{}).Allowed(at("2026-12-05 12:00")); !ok {
		t.Error("no windows: always allowed")
	}
}

func TestAFreezeCoversWholeDaysBothIncluded(t *testing.T) {
	f, err := ParseFreeze("2026-12-20/2027-01-04")
	if err != nil {
		t.Fatal(err)
	}
	ws := Windows{Freeze: []Freeze{f}}
	for _, c := range []struct {
		at     time.Time
		frozen bool
	}{
		{time.Date(2026, 12, 19, 23, 59, 0, 0, time.UTC), false},
		{time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2027, 1, 4, 23, 59, 0, 0, time.UTC), true},
		{time.Date(2027, 1, 5, 0, 0, 0, 0, time.UTC), false},
	} {
		if _, got := ws.Frozen(c.at); got != c.frozen {
			t.Errorf("%s: frozen %v, want %v", c.at, got, c.frozen)
		}
	}
	for _, bad := range []string{"2026-12-20", "2026-13-01/2026-12-31", "2026-12-20/2027-01-04 Mars/Olympus"} {
		if _, err := ParseFreeze(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, bad := range []string{"Mon-Fri", "Mon-Fry 09:00-16:00", "Mon 16:00-09:00", "Mon 9-5 UTC"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
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
