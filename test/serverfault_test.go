package test

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
)

// shiftHold sits in front of HAProxy's runtime socket. Once armed it holds
// the next weight change until the test releases it, so the test knows the
// Shift activity is in flight (its command sent, no answer yet).
type shiftHold struct {
	t       testing.TB
	real    string
	mu      sync.Mutex
	armed   bool
	held    chan string
	release chan struct{}
	weights []string // every weight-setting command since arm, in order
}

// socket starts the proxy for HAProxy's socket real and returns its own.
func (h *shiftHold) socket(real string) string {
	h.real, h.held, h.release = real, make(chan string, 1), make(chan struct{})
	dir, err := os.MkdirTemp("", "sy-hold")
	if err != nil {
		h.t.Fatal(err)
	}
	path := filepath.Join(dir, "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { l.Close(); os.RemoveAll(dir) })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go h.serve(c)
		}
	}()
	return path
}

func (h *shiftHold) serve(c net.Conn) {
	defer c.Close()
	cmd, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	if strings.Contains(cmd, "set weight") {
		h.mu.Lock()
		hold := h.armed
		h.armed = false
		if h.weights != nil || hold {
			h.weights = append(h.weights, strings.TrimSpace(cmd))
		}
		h.mu.Unlock()
		if hold {
			h.held <- cmd
			<-h.release
		}
	}
	up, err := net.Dial("unix", h.real)
	if err != nil {
		return
	}
	defer up.Close()
	if _, err := io.WriteString(up, cmd); err != nil {
		return
	}
	_, _ = io.Copy(c, up)
}

func (h *shiftHold) arm() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed = true
}

// devProc is `switchyard dev` on a SQLite file, as its own process, so the
// test can stop and start it like a user would.
type devProc struct {
	t        testing.TB
	args     []string
	dir      string
	hostPort string
	cmd      *exec.Cmd
}

func startDevProc(t testing.TB) *devProc {
	t.Helper()
	port, metrics := freePort(t), freePort(t)
	d := &devProc{t: t, dir: t.TempDir(), hostPort: "127.0.0.1:" + strconv.Itoa(port)}
	// its own worker idles on a queue nobody uses: the test runs the service's worker
	d.args = []string{"dev", "--state-dir", d.dir, "--port", strconv.Itoa(port), "--ui-port", "0",
		"--metrics", "127.0.0.1:" + strconv.Itoa(metrics), "--task-queue", "idle", "--log-level", "error", "--dashboard-port", "0"}
	d.start()
	t.Cleanup(d.stop)
	return d
}

func (d *devProc) start() {
	d.t.Helper()
	d.cmd = exec.Command(filepath.Join(bins, "switchyard"), d.args...)
	log, _ := os.OpenFile(filepath.Join(d.dir, "dev.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		c, err := client.Dial(client.Options{HostPort: d.hostPort, Logger: quiet{}})
		if err == nil {
			_, err = c.CheckHealth(context.Background(), nil)
			c.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(d.dir, "dev.log"))
			d.t.Fatalf("switchyard dev did not come up: %v\n%s", err, b)
		}
	}
}

// stop sends SIGTERM, as a service manager would, and waits.
func (d *devProc) stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
	d.cmd = nil
}

// TestServerRestartWhileAShiftIsInFlightLandsTheStepOnce stops the Temporal
// server (the dev server on its SQLite file, and the real server on
// PostgreSQL) while step 3's Shift activity is in flight: its weight change
// reaches HAProxy while the server is down, so the activity cannot report
// it. After the restart the step must land once: scheduled once, the same
// absolute weights if retried, no later step undone, every bake kept, no
// failed request.
func TestServerRestartWhileAShiftIsInFlightLandsTheStepOnce(t *testing.T) {
	for _, kind := range []string{"dev-sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) { shiftInFlightRestart(t, kind) })
	}
}

func shiftInFlightRestart(t *testing.T, kind string) {
	var addr string
	var stop, start func()
	switch kind {
	case "dev-sqlite":
		d := startDevProc(t)
		addr, stop, start = d.hostPort, d.stop, d.start
	case "postgres":
		pg := startPGTemporal(t)
		addr, stop, start = pg.hostPort, pg.stopServer, pg.startServer
	}
	hold := &shiftHold{t: t}
	bake := 2 * time.Second
	e := newEnv(t, opts{address: addr, bake: bake, noWorker: true, haproxySocket: hold.socket})
	startWorker(t, e)
	e.given("v1")
	gen := load.Start(e.url, 100, 5*time.Minute)
	defer gen.Stop()
	run := e.start("v2")
	e.waitFor("the bake of step 2", func(st *starterStatus) bool { return st.Step == 1 && !st.BakeEndsAt.IsZero() })
	hold.arm()
	var held string
	select {
	case held = <-hold.held:
	case <-time.After(time.Minute):
		t.Fatal("step 3's weight change never reached HAProxy's socket")
	}
	stop()
	t.Logf("Temporal server (%s) stopped with step 3's Shift in flight: %q", kind, strings.TrimSpace(held))
	close(hold.release) // the change lands on HAProxy while nobody can record it
	time.Sleep(2 * time.Second)
	start()
	t.Log("Temporal server started again")

	o := e.promotedUnderLoad(run, gen, 300)
	if w := e.weights(); w != (rollout.Weights{Green: 100}) {
		t.Fatalf("router says %s after promotion", w)
	}
	h := history(t, e, run)
	requireStepsScheduledOnce(t, h)
	for i, g := range stepGaps(o.Status) {
		if g < bake {
			t.Fatalf("step %d baked %s, less than its %s (gaps %v)", i+1, g, bake, stepGaps(o.Status))
		}
	}
	// what HAProxy was told from step 3 on: a retry repeats the same
	// absolute weights at once; nothing goes back to an earlier step
	hold.mu.Lock()
	cmds := append([]string(nil), hold.weights...)
	hold.mu.Unlock()
	seen := map[string]bool{}
	for i, c := range cmds {
		if i > 0 && c == cmds[i-1] {
			continue
		}
		if seen[c] {
			t.Fatalf("HAProxy was sent %q again after a later change: %q", c, cmds)
		}
		seen[c] = true
	}
	attempts := 1
	for _, ev := range h.Events {
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && int(a.Attempt) > attempts {
			attempts = int(a.Attempt)
		}
	}
	requireNoFailures(t, gen.Stop(), 300)
	t.Logf("promoted across a %s restart with a Shift in flight: step gaps %v; weight commands from step 3 on: %d (%d distinct); most attempts of any activity: %d",
		kind, stepGaps(o.Status), len(cmds), len(seen), attempts)
}
