package test

// Security tests: each is a finding of issue #22 (trust), attacked for
// real against the embedded Temporal server, real processes and HAProxy.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"
)

// startRaw starts a Deployment straight through the SDK, as any client with
// access to the namespace could: no CLI check runs.
func (e *env) startRaw(svc *spec.Service, version string) *starter.Outcome {
	e.t.Helper()
	run, err := e.starter.C.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: workflows.DeploymentID(svc.Name, svc.Environment), TaskQueue: e.queue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
	}, workflows.DeploymentWorkflow, workflows.DeploymentInput{Spec: *svc, Version: version, By: "raw client"})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := e.starter.Wait(ctx, run)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func TestAVersionThatIsNotANameIsRefusedWhereverItEnters(t *testing.T) {
	e := newEnv(t, opts{})
	for _, v := range []string{`v1"} or vector(0) #`, "../../bin/evil", "v1\nSubject: hi", strings.Repeat("v", 129), "..", "-rf"} {
		out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", v)
		expect(t, out, code, 2, "--version")
		if strings.Contains(out, "deploying") {
			t.Fatalf("version %q started a rollout:\n%s", v, out)
		}
	}
	// a client that skips the CLI is refused by the workflow itself
	// before any activity: nothing built, provisioned or routed
	o := e.startRaw(e.svc, "../../bin/evil")
	if o.Kind != workflows.ErrFailed || !strings.Contains(o.Reason, `checking the input: version: "../../bin/evil"`) {
		t.Fatalf("raw start with a path for a version: %+v", o)
	}
	if w := e.weights(); w != (rollout.Weights{}) {
		t.Fatalf("a refused version changed the router: %s", w)
	}
	if inst := e.instance(rollout.Blue); inst.Version != "" {
		t.Fatalf("a refused version started a slot: %+v", inst)
	}
	// and a good one still goes through
	out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v1.2.3-rc_1")
	expect(t, out, code, 0, "promoted")
}

func TestTheWorkerHoldsEverySpecToItsPolicy(t *testing.T) {
	reach := &spec.Reach{Path: "test-policy.yaml", Env: []string{"SWITCHYARD_TEST_OK_*"}, Hosts: []string{"127.0.0.1"}}
	e := newEnv(t, opts{reach: reach, extra: `alerts:
  - {kind: webhook, url: "http://127.0.0.1:1/hook", secretEnv: AWS_SECRET_ACCESS_KEY}
`})
	reach.Commands = []string{e.svc.Dir}
	// the CLI's own check passes (it has no policy): the worker refuses
	out, code := cli(t, e, "deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v1")
	expect(t, out, code, 4, "the worker refuses the spec", "alerts[0].secretEnv: the worker does not let specs read the variable AWS_SECRET_ACCESS_KEY (worker policy test-policy.yaml)")
	if w := e.weights(); w != (rollout.Weights{}) {
		t.Fatalf("a refused spec changed the router: %s", w)
	}

	// a spec sent by a raw client: a command outside the allowed
	// directories, a host outside the allowed ones
	bad := *e.svc
	bad.Build.Command = []string{"/bin/sh", "-c", "cat /etc/shadow"}
	bad.Alerts = []spec.Alert{{Kind: "webhook", URL: "http://metadata.internal:80/", SecretEnv: "SWITCHYARD_TEST_OK_HOOK"}}
	o := e.startRaw(&bad, "v1")
	for _, want := range []string{"build.command: /bin/sh is outside the commands this worker may run", "alerts[0].url: host metadata.internal:80 is not one this worker may reach"} {
		if !strings.Contains(o.Reason, want) {
			t.Fatalf("raw spec: reason lacks %q: %+v", want, o.Reason)
		}
	}
	// a spec no CLI would send (a secret in run.env) is refused by re-validation
	bad = *e.svc
	bad.Alerts = nil
	bad.Run.Env = map[string]string{"DB_PASSWORD": "hunter2"}
	o = e.startRaw(&bad, "v1")
	if !strings.Contains(o.Reason, "run.env.DB_PASSWORD: looks like a secret") {
		t.Fatalf("raw spec with a secret in run.env: %+v", o.Reason)
	}
	if w := e.weights(); w != (rollout.Weights{}) {
		t.Fatalf("a refused spec changed the router: %s", w)
	}

	// within the policy, it deploys
	src, err := os.ReadFile(e.file)
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(filepath.Dir(e.file), "good.yaml")
	fixed := strings.Replace(string(src), "secretEnv: AWS_SECRET_ACCESS_KEY", "secretEnv: SWITCHYARD_TEST_OK_HOOK", 1)
	if err := os.WriteFile(good, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = cli(t, e, "deploy", e.svc.Name, "-f", good, "--env", "test", "--version", "v1")
	expect(t, out, code, 0, "promoted")
}

// TestADeployAndARollbackRacedFiftyTimesNeverRunTogether races, 50 times, a
// Deployment and a Rollback of one service started at the same moment
// straight through the SDK (no client check can help): the server's writer
// lock lets one run; the other is refused before it changes anything, and
// no two holders' times overlap.
func TestADeployAndARollbackRacedFiftyTimesNeverRunTogether(t *testing.T) {
	e := newEnv(t, opts{steps: []int{100}, noBake: true})
	for _, v := range []string{"v1", "v2"} {
		e.given(v)
	}
	type held struct {
		from, to time.Time
		ok       bool
	}
	// hold reads when a run took the lock and when it closed, or that it was refused
	hold := func(run client.WorkflowRun) held {
		h := historyOf(t, e.starter.C, run)
		var got held
		for _, ev := range h.Events {
			if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil && a.WorkflowType.GetName() == workflows.ServiceLockWorkflow {
				got.from, got.ok = ev.EventTime.AsTime(), true
			}
		}
		got.to = h.Events[len(h.Events)-1].EventTime.AsTime()
		if !got.ok {
			// refused: it must have changed nothing
			for _, ev := range h.Events {
				if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
					t.Fatalf("%s was refused the lock but ran activity %s", run.GetID(), a.ActivityType.GetName())
				}
				if m := ev.GetMarkerRecordedEventAttributes(); m != nil {
					for _, p := range m.Details {
						for _, pl := range p.Payloads {
							if strings.Contains(string(pl.Data), "Shift") {
								t.Fatalf("%s was refused the lock but shifted traffic", run.GetID())
							}
						}
					}
				}
			}
		}
		return got
	}
	refused := 0
	for i := range 50 {
		w := e.weights()
		live := w.Live()
		st, err := e.starter.Status(context.Background(), e.svc.Name, "test")
		if err != nil {
			t.Fatal(err)
		}
		var dep, rb client.WorkflowRun
		var derr, rerr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			dep, derr = e.starter.C.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
				ID: workflows.DeploymentID(e.svc.Name, "test"), TaskQueue: e.queue, WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
			}, workflows.DeploymentWorkflow, workflows.DeploymentInput{Spec: *e.svc, Version: fmt.Sprintf("r%d", i), By: "ci"})
		}()
		go func() {
			defer wg.Done()
			rb, rerr = e.starter.C.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
				ID: workflows.RollbackID(e.svc.Name, "test"), TaskQueue: e.queue, WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
			}, workflows.RollbackWorkflow, workflows.RollbackInput{Spec: *e.svc, Strategy: workflows.Immediate, Reason: "on-call", By: "oncall",
				From: live, To: live.Other(), BadVersion: st.Version, PreviousVersion: st.PreviousVersion})
		}()
		wg.Wait()
		if derr != nil || rerr != nil {
			t.Fatalf("round %d: start: %v %v", i, derr, rerr)
		}
		_ = dep.Get(context.Background(), nil)
		_ = rb.Get(context.Background(), nil)
		d, r := hold(dep), hold(rb)
		if i == 0 {
			record(t, historyOf(t, e.starter.C, dep), fmt.Sprintf("deployment_raced_a_rollback_lock_held_%t.json", d.ok))
			record(t, historyOf(t, e.starter.C, rb), fmt.Sprintf("rollback_raced_a_deployment_lock_held_%t.json", r.ok))
		}
		if !d.ok || !r.ok {
			refused++
		}
		if d.ok && r.ok && d.from.Before(r.to) && r.from.Before(d.to) {
			t.Fatalf("round %d: the deployment held the service %s–%s and the rollback %s–%s: both ran at once",
				i, d.from.Format(time.StampMicro), d.to.Format(time.StampMicro), r.from.Format(time.StampMicro), r.to.Format(time.StampMicro))
		}
	}
	if refused < 25 {
		t.Fatalf("only %d of 50 rounds raced (one refused): the test did not race them", refused)
	}
	t.Logf("50 rounds of a deploy and a rollback started at once: %d had one refused by the lock, the rest ran one after the other; never both at once", refused)
}

// TestALongBakeContinuesAsNewOnTheRealServerAndPromotesUnderLoad: a rollout
// that continues as new every 2 analyses (a day's bake continues every
// 1,000) keeps its traffic split across runs, takes its service's lock
// again in each run, and promotes with 0 failed requests.
func TestALongBakeContinuesAsNewOnTheRealServerAndPromotesUnderLoad(t *testing.T) {
	e := newEnv(t, opts{bake: 6 * time.Second, steps: []int{50, 100}, analysis: "{interval: 1s, maxErrorRate: 0.05}"})
	e.given("v1")
	gen := load.Start(e.url, 50, 2*time.Minute)
	run, err := e.starter.C.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: workflows.DeploymentID(e.svc.Name, "test"), TaskQueue: e.queue, WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
	}, workflows.DeploymentWorkflow, workflows.DeploymentInput{Spec: *e.svc, Version: "v2", By: "test", AnalysesPerRun: 2})
	if err != nil {
		t.Fatal(err)
	}
	first := run.GetRunID() // Get follows the chain and moves it to the last run
	o := e.promotedUnderLoad(run, gen, 300)
	if o.Status.EventCount() < 10 {
		t.Fatalf("status: %+v", o.Status)
	}
	// walk the chain of runs from the first
	runID, runs, shiftRuns := first, 0, 0
	for runID != "" {
		runs++
		h := historyOf(t, e.starter.C, e.starter.C.GetWorkflow(context.Background(), run.GetID(), runID))
		if runs <= 2 {
			record(t, h, fmt.Sprintf("deployment_long_bake_continued_as_new_run%d.json", runs))
		}
		locked := false
		for _, ev := range h.Events {
			if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil && a.WorkflowType.GetName() == workflows.ServiceLockWorkflow {
				locked = true
			}
		}
		if !locked {
			t.Fatalf("run %d (%s) did not hold the service's lock", runs, runID)
		}
		if len(shiftsIn(t, h)) > 0 {
			shiftRuns++
		}
		runID = ""
		if a := h.Events[len(h.Events)-1].GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
			runID = a.NewExecutionRunId
		}
	}
	if runs < 4 {
		t.Fatalf("%d runs; want the two 6 s bakes at 1 s to continue as new every 2 analyses", runs)
	}
	t.Logf("promoted through %d runs (shifts in %d of them), %s", runs, shiftRuns, weightsLine(e))
}

func weightsLine(e *env) string { return e.weights().String() }

// TestTheEmbeddedRoutersAdminAPIListensOnAUnixSocketOnlyItsOwnerCanUse: a
// worker process runs the embedded Caddy with its admin API on a unix
// socket (mode 0200: Caddy's default, no other user can connect) and rolls
// out through it under load; the admin route refuses weights for a key no
// route uses, so nobody can grow its table.
func TestTheEmbeddedRoutersAdminAPIListensOnAUnixSocketOnlyItsOwnerCanUse(t *testing.T) {
	e := newEnv(t, opts{router: "embedded", ownCaddy: true, unixAdmin: true, noWorker: true, steps: []int{50, 100}})
	startWorker(t, e)
	e.given("v1")
	gen := load.Start(e.url, 50, time.Minute)
	e.promotedUnderLoad(e.start("v2"), gen, 100)
	sock := strings.TrimPrefix(e.svc.Router.Caddy.Admin, "unix:")
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o200 {
		t.Fatalf("the admin socket %s: %v %v, want a socket with mode 0200", sock, fi.Mode(), err)
	}
	cl := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://localhost/switchyard/weights/junk-%d", i), strings.NewReader("[1,2]"))
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("weights for a key no route uses: %d, want 404", resp.StatusCode)
		}
	}
	t.Logf("admin API on %s (mode %v); weights for unknown keys refused (404); %s", sock, fi.Mode().Perm(), e.weights())
}
