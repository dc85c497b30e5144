package test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
)

func TestValidateReportsEveryProblemWithItsLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	src := "service: api\nrun:\n  command: [./api]\n  ports: {blue: 9001, green: 9001}\nrouter: {kind: haproxy}\nrollout:\n  steps: [50, 25]\n  bakee: 1m\nenvironments: {production: {}}\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := cli(t, nil, "validate", path)
	expect(t, out, code, 2, path+`:8: unknown field "bakee"`)
	src = strings.Replace(src, "  bakee: 1m\n", "", 1)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = cli(t, nil, "validate", path)
	expect(t, out, code, 2, path+":4: run.ports: blue and green must differ", path+":5: router.haproxy.socket: required",
		path+":7: rollout.steps[1]: steps must ascend", path+":7: rollout.steps: the last step must be 100")
	out, code = cli(t, nil, "validate", "../deployments/demo.yaml", "../deployments/api-haproxy.yaml", "../deployments/api-compose.yaml", "../deployments/api-ecs.yaml")
	expect(t, out, code, 0, "demo.yaml: ok", "api-haproxy.yaml: ok", "api-compose.yaml: ok", "api-ecs.yaml: ok")
}

// validate deployments/*.yaml checks each file as what it is: service
// specs, release files (with their services' specs), roles and worker
// policies; a bad one of each kind names its line or field.
func TestValidateChecksEveryKindOfFileAsWhatItIs(t *testing.T) {
	files, _ := filepath.Glob("../deployments/*.yaml")
	out, code := cli(t, nil, append([]string{"validate"}, files...)...)
	expect(t, out, code, 0, "shop.release.yaml: ok (release shop: shop-backend → shop-frontend", "roles.yaml: ok (roles: 3 role(s)", "worker-policy.yaml: ok (worker policy:")
	if n := strings.Count(out, ": ok ("); n != len(files) {
		t.Fatalf("%d of %d files ok:\n%s", n, len(files), out)
	}
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rel := write("bad.release.yaml", "release: shop\nservices:\n  api: {spec: nosuch.yaml, afterr: [db]}\nenvironments:\n  - name: prod\n")
	out, code = cli(t, nil, "validate", rel)
	expect(t, out, code, 2, rel+`:3: `, `afterr`)
	rel = write("bad2.release.yaml", "release: shop\nservices:\n  api: {spec: nosuch.yaml}\nenvironments:\n  - name: prod\n")
	out, code = cli(t, nil, "validate", rel)
	expect(t, out, code, 2, rel+":3: ", "nosuch.yaml")
	roles := write("roles.yaml", "roles:\n  - {name: devs, members: [a@example.com], actions: [deploy, launch], services: ['*'], environments: ['*']}\n")
	out, code = cli(t, nil, "validate", roles)
	expect(t, out, code, 2, "launch")
	pol := write("policy.yaml", "commands: [bin/make]\n")
	out, code = cli(t, nil, "validate", pol)
	expect(t, out, code, 2, `commands[0]: "bin/make" must be an absolute path`)
}

func TestDeployRefusesBadArguments(t *testing.T) {
	e := newEnv(t, opts{})
	out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "prod", "--version", "v1")
	expect(t, out, code, 2, `unknown environment "prod" (defined: test)`)
	out, code = cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test")
	expect(t, out, code, 2, "--version is required")
	out, code = cli(t, e, "deploy", "nosuch", "--env", "test", "--version", "v1")
	expect(t, out, code, 2, `unknown service "nosuch": no spec at deployments/nosuch.yaml`)
	out, code = cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v1", "--bogus")
	expect(t, out, code, 2, "unknown flag: --bogus")
	if w := e.weights(); w != (rollout.Weights{}) {
		t.Fatalf("a refused deploy changed the router: %s", w)
	}
}

func TestUnreachableRouterFailsClearly(t *testing.T) {
	e := newEnv(t, opts{})
	src, _ := os.ReadFile(e.file)
	bad := filepath.Join(t.TempDir(), "norouter.yaml")
	re := strings.Replace(string(src), e.svc.Router.HAProxy.Socket, "/nonexistent/haproxy.sock", 1)
	if err := os.WriteFile(bad, []byte(re), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := cli(t, e, "deploy", e.svc.Name, "-f", bad, "--env", "test", "--version", "v1")
	expect(t, out, code, 4, "connect /nonexistent/haproxy.sock", "is HAProxy running with 'stats socket")
}

// liveBlue deploys v1 and starts load through the router.
func liveBlue(t *testing.T, e *env) *load.Generator {
	t.Helper()
	out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v1")
	expect(t, out, code, 0, "promoted")
	return load.Start(e.url, 50, time.Minute)
}

func TestPortInUseFailsAndTheLiveSlotKeepsServing(t *testing.T) {
	e := newEnv(t, opts{})
	gen := liveBlue(t, e)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", e.svc.Run.Ports.Green))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v2")
	expect(t, out, code, 4, fmt.Sprintf("port %d is in use", e.svc.Run.Ports.Green), "live slot untouched")
	time.Sleep(time.Second)
	res := gen.Stop()
	requireNoFailures(t, res, 40)
	if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
		t.Fatalf("router changed to %s", w)
	}
}

func TestCommandThatExitsAtOnceFailsWithItsLog(t *testing.T) {
	e := newEnv(t, opts{})
	gen := liveBlue(t, e)
	out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "crash-1")
	expect(t, out, code, 4, "exited at start", "cannot read /etc/app/config.yaml")
	time.Sleep(time.Second)
	requireNoFailures(t, gen.Stop(), 40)
	if w := e.weights(); w != (rollout.Weights{Blue: 100}) {
		t.Fatalf("router changed to %s", w)
	}
}

func TestSecondDeployWhileOneRunsIsRefusedNamingIt(t *testing.T) {
	e := newEnv(t, opts{bake: time.Minute})
	gen := liveBlue(t, e)
	out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v2", "--detach")
	expect(t, out, code, 0, "follow it with")
	e.waitFor("shifting", func(st *starterStatus) bool { return st.Step == 0 })
	out, code = cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v3")
	expect(t, out, code, 5, "a rollout is already running: workflow deploy/"+e.svc.Name+"/test", "version v2, phase shifting, 10% traffic")
	// the on-call verbs work on the running one
	out, code = cli(t, e, "pause", e.svc.Name, "--env", "test")
	expect(t, out, code, 0, "pause "+e.svc.Name)
	out, code = cli(t, e, "pause", e.svc.Name, "--env", "test")
	expect(t, out, code, 5, "pause refused: already paused")
	out, code = cli(t, e, "status", e.svc.Name, "--env", "test")
	expect(t, out, code, 0, "phase        shifting (paused)", "blue=90% green=10%")
	out, code = cli(t, e, "abort", e.svc.Name, "--env", "test", "--reason", "test is over")
	expect(t, out, code, 0, "blue=100% green=0%")
	requireNoFailures(t, gen.Stop(), 20)
	out, code = cli(t, e, "history", e.svc.Name, "--env", "test")
	expect(t, out, code, 0, "rolled-back", "promoted")
	out, code = cli(t, e, "history", "--stats", "--since", "1h")
	expect(t, out, code, 0, "SUCCESS", "MEAN→STABLE")
	var line string
	success, _, _ := strings.Cut(out, "DORA over") // the success table, before the DORA one
	for _, l := range strings.Split(success, "\n") {
		if strings.HasPrefix(l, e.svc.Name+" ") {
			line = l
		}
	}
	// two rollouts (v1 promoted, v2 aborted), one rollback, 50% success
	if f := strings.Fields(line); len(f) < 8 || f[2] != "2" || f[3] != "50.0%" || f[6] != "1" {
		t.Fatalf("stats line for %s: %q\n%s", e.svc.Name, line, out)
	}
}

func TestTheCalendarRefusesWithNoWaitAndAFreezeButForAnEmergency(t *testing.T) {
	now := time.Now().UTC()
	if now.Hour() == 0 && now.Minute() < 2 {
		t.Skip("the test's closed window is 00:00-00:01 UTC: too close to run now")
	}
	e := newEnv(t, opts{extra: "windows:\n  allow: [\"Mon-Sun 00:00-00:01 UTC\"]"})
	out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v1", "--no-wait")
	expect(t, out, code, 5, "refused: outside the allowed windows until", "(--no-wait)")
	if w := e.weights(); w != (rollout.Weights{}) {
		t.Fatalf("the router changed: %s", w)
	}

	day := now.Format("2006-01-02")
	g := newEnv(t, opts{noBake: true, extra: fmt.Sprintf("windows:\n  freeze: [\"%s/%s UTC\"]", day, day)})
	out, code = cli(t, g, "deploy", g.svc.Name, "-f", g.file, "--env", "test", "--version", "v1")
	expect(t, out, code, 5, fmt.Sprintf("refused: frozen (%s/%s UTC)", day, day), "--emergency --reason")
	out, code = cli(t, g, "deploy", g.svc.Name, "-f", g.file, "--env", "test", "--version", "v1", "--emergency", "--reason", "hotfix INC-7")
	expect(t, out, code, 0, "requested by", "(emergency: hotfix INC-7)", fmt.Sprintf("through the freeze %s/%s UTC: emergency: hotfix INC-7", day, day), "promoted")
}
