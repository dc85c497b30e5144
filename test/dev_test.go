package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/starter"
)

// startDev runs `switchyard dev` as its own process on a state dir and
// waits until its frontend answers.
func startDev(t *testing.T, stateDir string, port int) *exec.Cmd {
	t.Helper()
	return startDevUI(t, stateDir, port, 0)
}

// startDevUI is startDev with its Web UI on uiPort (0: none).
func startDevUI(t *testing.T, stateDir string, port, uiPort int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(filepath.Join(bins, "switchyard"), "dev", "--state-dir", stateDir,
		"--port", fmt.Sprint(port), "--ui-port", fmt.Sprint(uiPort), "--task-queue", "dev-q", "--metrics", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--dashboard-port", "0")
	log, _ := os.OpenFile(filepath.Join(stateDir, "dev.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// it prints "ready:" once its frontend answers health checks
	ready := 0
	if b, err := os.ReadFile(filepath.Join(stateDir, "dev.log")); err == nil {
		ready = strings.Count(string(b), "ready:")
	}
	for i := 0; i < 600; i++ {
		if b, err := os.ReadFile(filepath.Join(stateDir, "dev.log")); err == nil && strings.Count(string(b), "ready:") > ready {
			return cmd
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(stateDir, "dev.log"))
	t.Fatalf("switchyard dev did not start:\n%s", b)
	return nil
}

func TestDevRestartResumesTheRolloutInFlight(t *testing.T) {
	e := newEnv(t, opts{router: "embedded", bake: 3 * time.Second, noWorker: true, ownCaddy: true})
	state := t.TempDir()
	port := freePort(t)
	dev := startDev(t, state, port)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	run := func(args ...string) string {
		out, err := exec.Command(filepath.Join(bins, "switchyard"), append([]string{"--address", addr, "--task-queue", "dev-q"}, args...)...).CombinedOutput()
		if err != nil {
			devLog, _ := os.ReadFile(filepath.Join(state, "dev.log"))
			t.Fatalf("switchyard %s: %v\n%s\ndev.log:\n%s", strings.Join(args, " "), err, out, devLog)
		}
		return string(out)
	}
	out := run("deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v1")
	eventsOnce(t, out, "deploy v1 read from a pipe")
	run("deploy", e.svc.Name, "-f", e.file, "--env", "test", "--version", "v2", "--detach")
	c, err := client.Dial(client.Options{HostPort: addr, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	s := &starter.Starter{C: c, TaskQueue: "dev-q"}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		st, err := s.Status(context.Background(), e.svc.Name, "test")
		if err == nil && st.Step == 1 && !st.BakeEndsAt.IsZero() { // in the bake: no activity in flight
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rollout did not reach step 2: %v", err)
		}
	}
	c.Close()
	_ = dev.Process.Signal(syscall.SIGKILL)
	_ = dev.Wait()
	t.Log("switchyard dev SIGKILLed at step 2; restarting it on the same state dir")

	startDev(t, state, port)
	c, err = client.Dial(client.Options{HostPort: addr, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s = &starter.Starter{C: c, TaskQueue: "dev-q"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o, err := s.Wait(ctx, s.Run(e.svc.Name, "test"))
	if err != nil {
		t.Fatal(err)
	}
	var last time.Time
	for _, ev := range o.Status.Events {
		t.Logf("%s %s", ev.At.Format("15:04:05.000"), ev.Message)
		if strings.HasPrefix(ev.Message, "step ") {
			// a 3s bake, a restart in between: the server keeps the timer, and
			// the restarted server owns its shard at once (same internal ports)
			if !last.IsZero() && ev.At.Sub(last) > 15*time.Second {
				t.Errorf("%s came %s after the previous step", ev.Message, ev.At.Sub(last).Round(time.Millisecond))
			}
			last = ev.At
		}
	}
	if o.Kind != "" {
		t.Fatalf("after the restart: %s: %s", o.Kind, o.Reason)
	}
	if w := e.weights(); w != (rollout.Weights{Green: 100}) {
		t.Fatalf("the resumed embedded router says %s, want green=100", w)
	}
	out = run("watch", e.svc.Name, "--env", "test")
	eventsOnce(t, out, "watch of an ended rollout, read from a pipe")
	devLog, _ := os.ReadFile(filepath.Join(state, "dev.log"))
	if strings.Contains(string(devLog), "level=DEBUG") || !strings.Contains(string(devLog), "level=INFO") {
		t.Errorf("switchyard dev logs at INFO by default; its log:\n%s", devLog)
	}
	out = run("history", e.svc.Name, "--env", "test")
	if strings.Count(out, "promoted") != 2 {
		t.Fatalf("history should show both rollouts promoted:\n%s", out)
	}
}

// eventsOnce checks that a rollout's piped CLI output prints its events
// ("15:04:05.000  message" lines), each once.
func eventsOnce(t *testing.T, out, what string) {
	t.Helper()
	seen := map[string]int{}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if len(line) > 14 && line[2] == ':' && line[5] == ':' && line[8] == '.' && strings.HasPrefix(line[12:], "  ") {
			seen[line]++
			n++
		}
	}
	if n < 5 {
		t.Fatalf("%s: only %d event lines:\n%s", what, n, out)
	}
	for line, c := range seen {
		if c > 1 {
			t.Errorf("%s: printed %d times: %s", what, c, line)
		}
	}
}
