package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersionsAreNamesNothingElse(t *testing.T) {
	for _, v := range []string{"v1", "1.4.0-rc1", "v1.2.3_build.7", "2026-12-06", strings.Repeat("a", 128)} {
		if err := CheckVersion(v); err != nil {
			t.Errorf("%q refused: %v", v, err)
		}
	}
	for v, want := range map[string]string{
		"":                       "required",
		`v1"} or vector(0) #`:    "only letters",
		"../bin/evil":            "only letters",
		"v1/../../x":             "only letters",
		"v1..2":                  `".." is not allowed`,
		"-rf":                    "only letters",
		".hidden":                "only letters",
		"v1\r\nBcc: x@y":         "only letters",
		"v1 v2":                  "only letters",
		"<script>":               "only letters",
		strings.Repeat("a", 129): "at most 128",
	} {
		if err := CheckVersion(v); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "version: ") {
			t.Errorf("%q: got %v, want an error naming the version and %q", v, err, want)
		}
	}
}

func TestPromQLStringKeepsAValueInsideItsQuotes(t *testing.T) {
	for in, want := range map[string]string{
		`v1"} or vector(0) #`: `v1\"} or vector(0) #`,
		`a\"b`:                `a\\\"b`,
		"it's":                `it\'s`,
		"a\nb":                `a\nb`,
	} {
		if got := PromQLString(in); got != want {
			t.Errorf("PromQLString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAWorkerPolicyNamesEveryFieldThatReachesPastIt(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte("commands: ["+dir+"/bin]\nenv: [API_*, PROM_TOKEN]\nhosts: [127.0.0.1, '*.corp.example']\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := LoadReach(policy)
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{Name: "api", Platform: PlatformProcess, Dir: dir,
		Build: Build{Command: []string{"sh", "-c", "make"}, Env: []string{"GOFLAGS"}},
		Gates: []Gate{{Command: []string{"./bin/test-{{version}}"}}},
		Run:   Run{Command: []string{"../outside/api"}, SecretEnv: map[string]string{"DB": "API_DB", "KEY": "AWS_SECRET_ACCESS_KEY"}},
		Alerts: []Alert{{Kind: "webhook", URL: "http://169.254.169.254/latest", SecretEnv: "PROM_TOKEN"},
			{Kind: "email", SMTP: "smtp.corp.example:587"}},
	}
	s.Rollout.Analysis.Prometheus = &Prometheus{Address: "http://prom.corp.example:9090"}
	var got []string
	for _, p := range r.Check(s) {
		got = append(got, p.Error())
	}
	want := []string{
		"build.command: ", "is outside the commands this worker may run",
		"run.command: " + filepath.Join(filepath.Dir(dir), "outside/api") + " is outside",
		"run.secretEnv.KEY: the worker does not let specs read the variable AWS_SECRET_ACCESS_KEY (worker policy " + policy + ")",
		"build.env[0]: the worker does not let specs read the variable GOFLAGS",
		"alerts[0].url: host 169.254.169.254 is not one this worker may reach",
	}
	all := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("problems lack %q:\n%s", w, all)
		}
	}
	if len(got) != 5 {
		t.Errorf("want 5 problems (gates, API_DB, PROM_TOKEN, the corp hosts are allowed), got %d:\n%s", len(got), all)
	}
	if ps := (*Reach)(nil).Check(s); ps != nil {
		t.Errorf("no policy refused %v", ps)
	}
	if err := os.WriteFile(policy, []byte("comands: [/bin]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadReach(policy); err == nil || !strings.Contains(err.Error(), "comands") {
		t.Errorf("a misspelt field: %v", err)
	}
	if err := os.WriteFile(policy, []byte("commands: [bin]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadReach(policy); err == nil || !strings.Contains(err.Error(), `commands[0]: "bin" must be an absolute path`) {
		t.Errorf("a relative command directory: %v", err)
	}
}

func TestRedactHidesTheSpecsSecretsAndURLPasswordsAndBoundsTheOutput(t *testing.T) {
	t.Setenv("SWITCHYARD_TEST_DB_PASS", "correct-horse-battery")
	t.Setenv("SWITCHYARD_TEST_HOOK", "https://hooks.example/T000/B000/XXXX")
	s := &Service{Run: Run{SecretEnv: map[string]string{"DB_PASSWORD": "SWITCHYARD_TEST_DB_PASS"}},
		Alerts: []Alert{{Kind: "slack", URLEnv: "SWITCHYARD_TEST_HOOK"}}}
	got := s.Redact("connecting with correct-horse-battery to postgres://app:pw@db:5432/x; posting to https://hooks.example/T000/B000/XXXX")
	want := "connecting with [redacted $SWITCHYARD_TEST_DB_PASS] to postgres://db:5432/x; posting to [redacted $SWITCHYARD_TEST_HOOK]"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	long := strings.Repeat("x", 10000) + "the end"
	if got := s.Redact(long); len(got) > MaxOutput+4 || !strings.HasSuffix(got, "the end") {
		t.Errorf("long output kept %d bytes, ending %q", len(got), got[len(got)-10:])
	}
	f, err := Parse("api.yaml", []byte("service: api\nrun: {command: [./api], ports: {blue: 18001, green: 18002}}\nrouter: {caddy: {listen: 127.0.0.1:18000}}\n"+
		"rollout: {analysis: {prometheus: {address: 'http://admin:s3cret@127.0.0.1:9090'}, metrics: [{name: m, query: up, max: 1}]}}\nenvironments: {test: {}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Resolve("test")
	if err == nil || !strings.Contains(err.Error(), "rollout.analysis.prometheus.address: holds a password") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a password in the Prometheus address: %v", err)
	}
}

func TestTheShippedWorkerPolicyLoads(t *testing.T) {
	r, err := LoadReach("../../deployments/worker-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Commands) == 0 || len(r.Env) == 0 || len(r.Hosts) == 0 || r.Compose.AllowRoot {
		t.Fatalf("%+v", r)
	}
	if !r.host("events.pagerduty.com:443") || r.host("169.254.169.254") || !r.host("prom.internal.example.com:9090") {
		t.Fatal("hosts")
	}
}

func TestTheEmbeddedRoutersAdminMustBeLoopbackOrAUnixSocket(t *testing.T) {
	for admin, want := range map[string]string{
		"http://0.0.0.0:2019":          "has no authentication: bind it to 127.0.0.1 or, better, a unix socket",
		"http://10.0.0.5:2019":         "has no authentication",
		"unix:run/admin.sock":          "must be absolute",
		"tcp://127.0.0.1:2019":         "must be unix:/path/to/admin.sock or an http:// URL",
		"http://127.0.0.1:2019":        "",
		"unix:/run/switchyard/a.sock":  "",
		"http://localhost:2019/config": "",
	} {
		f, err := Parse("api.yaml", []byte("service: api\nrun: {command: [./api], ports: {blue: 18001, green: 18002}}\nrouter: {kind: embedded, caddy: {listen: 127.0.0.1:18000, admin: '"+admin+"'}}\nenvironments: {test: {}}\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Resolve("test")
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), "router.caddy.admin: ") || !strings.Contains(err.Error(), want)) {
			t.Errorf("admin %s: %v, want %q", admin, err, want)
		}
	}
}
