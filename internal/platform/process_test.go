package platform

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// a real slot process: the demo app, built once for these tests
func demoSpec(t *testing.T) *spec.Service {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "demo-app"), "../../cmd/demo-app").CombinedOutput(); err != nil {
		t.Fatalf("build demo-app: %v\n%s", err, out)
	}
	port := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	return &spec.Service{Name: "svc", Environment: "test", Dir: dir,
		Run: spec.Run{Command: []string{"./demo-app"}, Host: "127.0.0.1", Ports: spec.SlotPorts{Blue: port(), Green: port()},
			StartTimeout: spec.Duration(10 * time.Second), StopTimeout: spec.Duration(5 * time.Second)}}
}

func TestProvisionReattachesToTheRightVersionAndReplacesAWrongOne(t *testing.T) {
	s := demoSpec(t)
	p := NewProcess(s)
	ctx := context.Background()
	t.Cleanup(func() { _ = p.Retire(ctx, rollout.Green) })
	first, err := p.Provision(ctx, rollout.Green, "v1", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.Reattached || !first.Running {
		t.Fatalf("first provision: %+v", first)
	}
	again, err := p.Provision(ctx, rollout.Green, "v1", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Reattached || again.PID != first.PID {
		t.Fatalf("second provision of the same version started another process: %+v, first %+v", again, first)
	}
	// a fresh platform value, as a new worker would have, finds it too
	in, err := NewProcess(s).Inspect(ctx, rollout.Green)
	if err != nil || !in.Running || in.Version != "v1" || in.PID != first.PID {
		t.Fatalf("inspect from a new worker: %+v %v", in, err)
	}
	v2, err := p.Provision(ctx, rollout.Green, "v2", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Reattached || v2.PID == first.PID {
		t.Fatalf("another version must replace the process: %+v", v2)
	}
	if _, ok := procStart(first.PID); ok {
		t.Fatalf("the v1 process %d is still running", first.PID)
	}
	if err := p.Retire(ctx, rollout.Green); err != nil {
		t.Fatal(err)
	}
	if in, _ := p.Inspect(ctx, rollout.Green); in.Running {
		t.Fatalf("retired slot still running: %+v", in)
	}
	if err := p.Retire(ctx, rollout.Green); err != nil {
		t.Fatalf("retiring a stopped slot is not an error: %v", err)
	}
}

func TestMissingSecretIsNamedButNeverShown(t *testing.T) {
	s := demoSpec(t)
	s.Run.SecretEnv = map[string]string{"DB_PASSWORD": "SWITCHYARD_TEST_UNSET_SECRET"}
	_, err := NewProcess(s).Provision(context.Background(), rollout.Blue, "v1", "", nil)
	if err == nil || !strings.Contains(err.Error(), "no environment variable SWITCHYARD_TEST_UNSET_SECRET") {
		t.Fatalf("got %v", err)
	}
}

func TestSecretReachesTheSlotOnly(t *testing.T) {
	s := demoSpec(t)
	t.Setenv("SWITCHYARD_TEST_SECRET", "0.5")
	// the demo app reads DEMO_ERROR_RATE: a harmless stand-in for a secret
	s.Run.SecretEnv = map[string]string{"DEMO_ERROR_RATE": "SWITCHYARD_TEST_SECRET"}
	p := NewProcess(s)
	ctx := context.Background()
	t.Cleanup(func() { _ = p.Retire(ctx, rollout.Blue) })
	if _, err := p.Provision(ctx, rollout.Blue, "v1", "", nil); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("cat", p.LogPath(rollout.Blue)).Output()
	if !strings.Contains(string(out), "error rate 0.50") {
		t.Fatalf("the slot did not get the secret's value: %s", out)
	}
}

// A worker that dies between starting a slot and writing its pidfile leaves
// an unrecorded process on the port; the next Provision stops it (known by
// the environment Switchyard gave it) and starts the slot, where a process
// someone else started on the port is refused.
func TestProvisionStopsAnUnrecordedProcessOfItsOwnSlot(t *testing.T) {
	s := demoSpec(t)
	p := NewProcess(s)
	ctx := context.Background()
	t.Cleanup(func() { _ = p.Retire(ctx, rollout.Blue) })
	orphan := exec.Command(filepath.Join(s.Dir, "demo-app"))
	orphan.Env = []string{fmt.Sprintf("PORT=%d", s.Run.Ports.Blue), "HOST=127.0.0.1", "VERSION=v1",
		"SWITCHYARD_SERVICE=svc", "SWITCHYARD_ENVIRONMENT=test", "SWITCHYARD_SLOT=blue"}
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- orphan.Wait() }()
	for i := 0; portFree(p.addr(rollout.Blue)) == nil && i < 100; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	// and a pidfile torn by a kill mid-write (the kill matrix found one) is no record
	if err := os.MkdirAll(p.stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.base(rollout.Blue)+".pid", []byte(`{"pid":`), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := p.Provision(ctx, rollout.Blue, "v1", "", nil)
	if err != nil {
		t.Fatalf("provision over an orphan of its own slot and a torn pidfile: %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the orphan still runs")
	}
	if !in.Running || in.PID == orphan.Process.Pid {
		t.Fatalf("provisioned %+v (orphan pid %d)", in, orphan.Process.Pid)
	}

	// a stranger on the green port is not ours: refused, left running
	stranger, err := net.Listen("tcp", p.addr(rollout.Green))
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, err := p.Provision(ctx, rollout.Green, "v1", "", nil); err == nil || !strings.Contains(err.Error(), "did not start") {
		t.Fatalf("a port held by another process: %v", err)
	}
}

// A pidfile is believed only for a process Switchyard started for the
// slot: a forged one naming pid 1, or a process of someone else's (with
// its real start time), kills nothing and is not taken for the slot.
func TestAForgedPidfileKillsNothing(t *testing.T) {
	s := demoSpec(t)
	p := NewProcess(s)
	ctx := context.Background()
	if err := os.MkdirAll(p.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// someone else's process, in a group of its own
	other := exec.Command("sleep", "60")
	other.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	otherStart, _ := procStart(other.Process.Pid)
	init1, _ := procStart(1)
	for _, pf := range []string{
		fmt.Sprintf(`{"pid":1,"startTime":%q,"version":"v1","port":%d}`, init1, s.Run.Ports.Blue),
		fmt.Sprintf(`{"pid":%d,"startTime":%q,"version":"v1","port":%d}`, other.Process.Pid, otherStart, s.Run.Ports.Blue),
		fmt.Sprintf(`{"pid":-1,"startTime":"","version":"v1","port":%d}`, s.Run.Ports.Blue),
	} {
		if err := os.WriteFile(p.base(rollout.Blue)+".pid", []byte(pf), 0o600); err != nil {
			t.Fatal(err)
		}
		in, err := p.Inspect(ctx, rollout.Blue)
		if err != nil || in.Running {
			t.Fatalf("pidfile %s taken for the slot: %+v %v", pf, in, err)
		}
		if err := p.Retire(ctx, rollout.Blue); err != nil {
			t.Fatal(err)
		}
		if _, ok := procStart(other.Process.Pid); !ok {
			t.Fatalf("pidfile %s: Retire killed a process Switchyard did not start", pf)
		}
	}
	// what Switchyard writes itself is private to the worker's user
	if _, err := p.Provision(ctx, rollout.Blue, "v1", "", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Retire(ctx, rollout.Blue) })
	for _, f := range []string{p.base(rollout.Blue) + ".pid", p.LogPath(rollout.Blue)} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", f, fi.Mode().Perm(), err)
		}
	}
}

// Two attempts of one Provision at once in a worker (a retry after a
// heartbeat timeout while the first still runs, as under load): both end
// on the one process, neither takes the other's for a stranger's.
func TestTwoProvisionsOfOneSlotAtOnceEndOnOneProcess(t *testing.T) {
	s := demoSpec(t)
	p := NewProcess(s)
	ctx := context.Background()
	t.Cleanup(func() { _ = p.Retire(ctx, rollout.Green) })
	for round := range 15 {
		var wg sync.WaitGroup
		var got [2]rollout.Instance
		var errs [2]error
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = NewProcess(s).Provision(ctx, rollout.Green, fmt.Sprintf("v%d", round), "", nil)
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil || got[0].PID != got[1].PID {
			t.Fatalf("round %d: %v / %v, pids %d and %d", round, errs[0], errs[1], got[0].PID, got[1].PID)
		}
	}
}
