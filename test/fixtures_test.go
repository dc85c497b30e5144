package test

// The end-to-end tests' shared fixtures, in the given/when/then shape of
// argo-rollouts' test/fixtures: given a live version (env.given), when the
// CLI runs (cli) or a worker dies (startWorker, killAndRestart), then what
// the user sees (expect), what the load saw (requireNoFailures) and what
// the history holds (history, shiftsIn, record). The environment itself is
// harness_test.go's newEnv.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/starter"
)

// cli runs the switchyard binary against the test server and returns its
// combined output and exit code.
func cli(t *testing.T, e *env, args ...string) (string, int) {
	t.Helper()
	addr := server.HostPort
	if e != nil {
		addr = e.address
	}
	full := append([]string{"--address", addr}, args...)
	if e != nil {
		full = append([]string{"--task-queue", e.queue}, full...)
	}
	cmd := exec.Command(filepath.Join(bins, "switchyard"), full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), 0
}

func expect(t *testing.T, out string, code, wantCode int, wants ...string) {
	t.Helper()
	if code != wantCode {
		t.Fatalf("exit %d, want %d; output:\n%s", code, wantCode, out)
	}
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Fatalf("output lacks %q:\n%s", w, out)
		}
	}
}

// startWorker runs `switchyard worker`, this checkout's build, as its own
// process, as in production.
func startWorker(t testing.TB, e *env) *exec.Cmd {
	t.Helper()
	return startWorkerFrom(t, e, filepath.Join(bins, "switchyard"), "worker.log")
}

// startWorkerFrom runs `switchyard worker` from binary bin with extra flags,
// logging to a file named log.
func startWorkerFrom(t testing.TB, e *env, bin, log string, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"worker", "--address", e.address, "--task-queue", e.queue,
		"--state-dir", filepath.Join(t.TempDir(), "state")}, extra...)...)
	f, _ := os.Create(filepath.Join(t.TempDir(), log))
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// killAndRestart SIGKILLs a worker process, leaves the service without one
// for 2s (its slots are their own processes and keep serving), and starts a
// new one, which it returns.
func killAndRestart(t *testing.T, e *env, w *exec.Cmd, when string) *exec.Cmd {
	t.Helper()
	if err := w.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = w.Wait()
	t.Log("worker SIGKILLed " + when)
	time.Sleep(2 * time.Second)
	return startWorker(t, e)
}

// history reads a run's events.
func history(t *testing.T, e *env, run client.WorkflowRun) *historypb.History {
	t.Helper()
	return historyOf(t, e.starter.C, run)
}

// historyOf reads a run's whole history.
func historyOf(t *testing.T, c client.Client, run client.WorkflowRun) *historypb.History {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	return h
}

// shiftsIn lists the weights of every Shift activity the workflow scheduled.
func shiftsIn(t *testing.T, h *historypb.History) []rollout.Weights {
	t.Helper()
	var out []rollout.Weights
	for _, ev := range h.Events {
		a := ev.GetActivityTaskScheduledEventAttributes()
		if a == nil || a.ActivityType.GetName() != "Shift" {
			continue
		}
		var in activities.ShiftInput
		if err := converter.GetDefaultDataConverter().FromPayloads(a.Input, &in); err != nil {
			t.Fatal(err)
		}
		out = append(out, in.Weights)
	}
	return out
}

// record saves a history for the replay tests when SWITCHYARD_RECORD names a directory.
func record(t *testing.T, h *historypb.History, name string) {
	dir := os.Getenv("SWITCHYARD_RECORD")
	if dir == "" {
		return
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// requireNoFailures fails the test with the first failed requests.
func requireNoFailures(t testing.TB, r load.Result, min int) {
	t.Helper()
	t.Logf("load: %s", r)
	if r.Failed != 0 {
		t.Fatalf("%d of %d requests failed by cause %v; first: %+v\nHAProxy's log of them:\n%s", r.Failed, r.Requests, r.Causes, r.Failures, haproxyFailures(t))
	}
	if r.Requests < min {
		t.Fatalf("only %d requests were sent, want at least %d: the load did not run", r.Requests, min)
	}
}

// httplogLine reads an HAProxy httplog line: the server, the status and the
// session state at close ("----" clean, "SC--" the server refused,
// "sH--" server timeout, "CD--" the client went away).
var httplogLine = regexp.MustCompile(`\] \S+ (\S+) \S+ (\d{3}) \S+ \S+ \S+ (\S{4}) `)

// haproxyFailures returns the lines of this test's HAProxy logs (option
// httplog) for requests that ended in a 5xx or unclean: what the router
// saw of the failures the client counted.
func haproxyFailures(t testing.TB) string {
	logs, _ := filepath.Glob(filepath.Join(filepath.Dir(t.TempDir()), "*", "haproxy.log"))
	var out []string
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if m := httplogLine.FindStringSubmatch(line); m != nil && (m[2] >= "500" || m[3] != "----" || strings.Contains(m[1], "NOSRV")) {
				out = append(out, line)
			}
		}
	}
	if len(out) > 40 {
		out = append(out[:40], fmt.Sprintf("... and %d more", len(out)-40))
	}
	if len(out) == 0 {
		return "(no HAProxy log line of a failed request: the failures did not pass through HAProxy, or it is not HAProxy)"
	}
	return strings.Join(out, "\n")
}

// given makes version the live one: deployed and promoted, or the test stops.
func (e *env) given(version string) *starter.Outcome {
	e.t.Helper()
	o := e.deploy(version)
	if o.Kind != "" {
		e.t.Fatalf("given %s live: %s: %s", version, o.Kind, o.Reason)
	}
	return o
}
