package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/dashboard"
	"github.com/switchyard/switchyard/internal/platform"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/starter"
)

// BenchmarkScale200ConcurrentRollouts: 200 services (process platform, one
// HAProxy with a backend each, no bake) rolled out at once by one worker
// process against the real Temporal server on PostgreSQL: first v1 (straight
// to 100 %), then v2 through the five steps. It reports how many were
// promoted, the time between two steps (Switchyard's own overhead under
// that load) and the worker's peak RSS. Targets on a 2-core machine: all 200,
// overhead p99 ≤ 2 s, RSS ≤ 200 MB.
func BenchmarkScale200ConcurrentRollouts(b *testing.B) {
	const n = 200
	pg := startPGTemporal(b)
	svcs := scaleServices(b, n)
	e := &env{t: b, queue: "scale", address: pg.hostPort}
	// the production worker build (make build-worker: no embedded server),
	// with its heap profile on loopback to show where the memory goes
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", freePort(b))
	workerBin := filepath.Join(bins, "switchyard-worker")
	if os.Getenv("SWITCHYARD_SCALE_FULL_WORKER") != "" { // to compare: the full build's worker
		workerBin = filepath.Join(bins, "switchyard")
	}
	w := startWorkerFrom(b, e, workerBin, "worker.log", "--pprof", pprofAddr)
	c := dialAt(b, pg.hostPort)
	st := &starter.Starter{C: c, TaskQueue: e.queue}

	var peak int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			if kb := rssKB(w.Process.Pid); kb > peak {
				peak = kb
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	wave := func(version string) (promoted int, took time.Duration, gaps []time.Duration) {
		start := time.Now()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, s := range svcs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run, err := st.Deploy(context.Background(), s, version, "bench", starter.DeployOptions{})
				if err != nil {
					b.Errorf("%s %s: %v", s.Name, version, err)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
				defer cancel()
				o, err := st.Wait(ctx, run)
				mu.Lock()
				defer mu.Unlock()
				if err != nil || o.Kind != "" {
					if o != nil {
						b.Errorf("%s %s: %s %s", s.Name, version, o.Kind, o.Reason)
					} else {
						b.Errorf("%s %s: %v", s.Name, version, err)
					}
					return
				}
				promoted++
				gaps = append(gaps, stepGaps(o.Status)...)
			}()
		}
		wg.Wait()
		return promoted, time.Since(start), gaps
	}
	p1, t1, _ := wave("v1")
	// the dashboard over the same server: its overview rendered while the
	// 200 rollouts of v2 run, with 200 pages open on it (server-sent events)
	dash := httptest.NewServer((&dashboard.Server{Starter: st}).Handler())
	defer func() { dash.CloseClientConnections(); dash.Close() }()
	watch, watched := overviewLoad(b, dash.URL, 200)
	p2, t2, gaps := wave("v2")
	heapTop(b, pprofAddr)
	busy, updates := watch()
	idle := overviewRenders(b, dash.URL, 40, n)
	watched()
	close(stop)
	sampler.Wait()
	p50, p99 := quantiles(gaps)
	b50, b99 := quantiles(busy)
	i50, i99 := quantiles(idle)
	fmt.Printf("dashboard overview of %d services (PostgreSQL-backed server), server-side render: idle p50 %s, p99 %s; during the %d rollouts p50 %s, p99 %s (%d renders; target ≤ 200ms); 200 open pages got %d pushed updates\n",
		n, i50.Round(time.Millisecond), i99.Round(time.Millisecond), n, b50.Round(time.Millisecond), b99.Round(time.Millisecond), len(busy), updates)
	b.ReportMetric(float64(i99.Milliseconds()), "overview-p99-ms")
	b.ReportMetric(float64(p2), "promoted")
	b.ReportMetric(p99.Seconds(), "step-p99-s")
	b.ReportMetric(float64(peak)/1024, "worker-rss-MB")
	fmt.Printf("scale (PostgreSQL-backed server, one worker (%s), %d services, no bake): v1 %d/%d promoted in %s; v2 %d/%d promoted in %s; "+
		"per-step overhead over %d steps p50 %s, p99 %s (target ≤ 2s); worker peak RSS %d MB (target ≤ 150 MB)\n",
		filepath.Base(workerBin), n, p1, n, t1.Round(time.Millisecond), p2, n, t2.Round(time.Millisecond), len(gaps), p50.Round(time.Millisecond), p99.Round(time.Millisecond), peak/1024)
}

// overviewRenders times n renders of the dashboard's overview, each
// checked to list every service.
func overviewRenders(b *testing.B, base string, n, services int) []time.Duration {
	var out []time.Duration
	for range n {
		time.Sleep(250 * time.Millisecond) // Temporal limits visibility reads: 10/s per namespace by default
		t := time.Now()
		resp, err := http.Get(base + "/")
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, time.Since(t))
		if resp.StatusCode != 200 || strings.Count(string(body), `<tr data-key="scale-`) != services {
			b.Fatalf("overview: %s, %d of %d services listed", resp.Status, strings.Count(string(body), `<tr data-key="scale-`), services)
		}
	}
	return out
}

// overviewLoad opens `pages` event streams on the overview, as that many
// open browser tabs, and renders the overview every 500 ms. watch stops the
// renders and returns their times and the updates the pages got; done
// closes the pages.
func overviewLoad(b *testing.B, base string, pages int) (watch func() ([]time.Duration, int64), done func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var updates atomic.Int64
	for range pages {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events?page=%2F", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 8<<20)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: ") {
					updates.Add(1)
				}
			}
		}()
	}
	stop := make(chan struct{})
	var times []time.Duration
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			t := time.Now()
			resp, err := http.Get(base + "/")
			if err != nil {
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			times = append(times, time.Since(t))
		}
	}()
	return func() ([]time.Duration, int64) { close(stop); wg.Wait(); return times, updates.Load() }, cancel
}

// rssKB reads a process's resident set size from /proc.
func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
	}
	return 0
}

// heapTop prints the worker's largest in-use allocations, from its heap
// profile (go tool pprof -top), to say where its memory goes.
func heapTop(b *testing.B, addr string) {
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap")
	if err != nil {
		b.Logf("heap profile: %v", err)
		return
	}
	defer resp.Body.Close()
	f := filepath.Join(b.TempDir(), "heap.pb.gz")
	data, _ := io.ReadAll(resp.Body)
	if err := os.WriteFile(f, data, 0o644); err != nil {
		b.Fatal(err)
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount", "12", "-sample_index", "inuse_space", filepath.Join(bins, "switchyard-worker"), f).CombinedOutput()
	if err != nil {
		b.Logf("go tool pprof: %v\n%s", err, out)
		return
	}
	fmt.Printf("worker heap in use after the v2 wave (go tool pprof -top):\n%s", out)
}

// scaleServices writes n services' specs (process platform, no bake) and
// starts one HAProxy with a backend for each; their slots stop at the end.
func scaleServices(b *testing.B, n int) []*spec.Service {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte(fmt.Sprintf("#!/bin/sh\nexec %s/good/demo-app\n", bins)), 0o755); err != nil {
		b.Fatal(err)
	}
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		b.Skip("haproxy is not installed (apt-get install haproxy)")
	}
	sock := filepath.Join(dir, "haproxy.sock")
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global\n    stats socket %s mode 600 level admin\n    maxconn 4000\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n", sock)
	svcs := make([]*spec.Service, n)
	for i := range n {
		blue, green := freePort(b), freePort(b)
		name := fmt.Sprintf("scale-%03d", i)
		fmt.Fprintf(&cfg, "backend %s\n    server blue 127.0.0.1:%d weight 0\n    server green 127.0.0.1:%d weight 0\n", name, blue, green)
		src := fmt.Sprintf(`service: %s
run:
  command: ["./run.sh"]
  ports: {blue: %d, green: %d}
  stateDir: slots
router: {kind: haproxy, haproxy: {socket: %s, backend: %s}}
checks:
  health: {successes: 1, interval: 100ms, timeout: 60s}
  performance: {requests: 5, concurrency: 1, maxP95: 5s}
rollout:
  bake: 0s
  scaleDownDelay: 0s
environments:
  bench: {}
`, name, blue, green, sock, name)
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			b.Fatal(err)
		}
		if svcs[i], err = starter.ResolveSpec(path, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "haproxy.cfg"), []byte(cfg.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	hp := exec.Command(haproxy, "-db", "-f", filepath.Join(dir, "haproxy.cfg"))
	if err := hp.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = hp.Process.Kill(); _ = hp.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			b.Fatal("haproxy did not open its socket")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Cleanup(func() {
		for _, s := range svcs {
			p := platform.NewProcess(s)
			_ = p.Retire(context.Background(), rollout.Blue)
			_ = p.Retire(context.Background(), rollout.Green)
		}
	})
	return svcs
}
