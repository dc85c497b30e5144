package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/switchyard/switchyard/internal/dashboard"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"
)

// BenchmarkDashboardOverview200: the dashboard's overview of 200 services
// (two rollouts each, 400 runs with their search attributes, on a task
// queue no worker polls), rendered server-side against the real Temporal
// server on PostgreSQL. Target: ≤ 200 ms.
func BenchmarkDashboardOverview200(b *testing.B) {
	pg := startPGTemporal(b)
	c := dialAt(b, pg.hostPort)
	const n = 200
	for i := range n {
		for v, phase := range []string{"promoted", "shifting"} {
			_, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
				ID: fmt.Sprintf("deploy/svc-%03d/production/%d", i, v), TaskQueue: "no-worker",
				TypedSearchAttributes: temporal.NewSearchAttributes(
					workflows.SAService.ValueSet(fmt.Sprintf("svc-%03d", i)), workflows.SAEnvironment.ValueSet("production"),
					workflows.SAVersion.ValueSet(fmt.Sprintf("v%d", v+1)), workflows.SAPhase.ValueSet(phase), workflows.SATraffic.ValueSet(int64(25*v))),
			}, workflows.DeploymentWorkflow)
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	st := &starter.Starter{C: c, TaskQueue: "no-worker"}
	srv := httptest.NewServer((&dashboard.Server{Starter: st}).Handler())
	defer srv.Close()
	// visibility is eventually consistent: wait until all 200 are listed
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		o, err := st.Overview(context.Background())
		if err == nil && len(o.Services) == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the overview never listed %d services: %v", n, err)
		}
	}
	var q []time.Duration
	var visibility []time.Duration
	// one render every 250 ms: the server's own reader renders the overview
	// every 500 ms however many pages show it, and Temporal limits a
	// namespace's visibility reads (10/s by default)
	for range 40 {
		time.Sleep(250 * time.Millisecond)
		t := time.Now()
		if _, err := st.Overview(context.Background()); err != nil {
			b.Fatal(err)
		}
		visibility = append(visibility, time.Since(t))
	}
	for range 40 {
		time.Sleep(250 * time.Millisecond)
		t := time.Now()
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		q = append(q, time.Since(t))
		if rows := strings.Count(string(body), `<tr data-key="svc-`); rows != n {
			b.Fatalf("the overview lists %d services, want %d", rows, n)
		}
	}
	p50, p99 := quantiles(q)
	v50, v99 := quantiles(visibility)
	b.ReportMetric(float64(p99.Microseconds())/1000, "overview-p99-ms")
	fmt.Printf("dashboard overview of %d services (400 runs, PostgreSQL-backed server), server-side render: p50 %s, p99 %s (target ≤ 200ms); of which reading Temporal p50 %s, p99 %s\n",
		n, p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond), v50.Round(100*time.Microsecond), v99.Round(100*time.Microsecond))
}
