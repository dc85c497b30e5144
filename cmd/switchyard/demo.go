//go:build !noserver

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/dashboard"
	"github.com/switchyard/switchyard/internal/devserver"
	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/worker"
	"github.com/switchyard/switchyard/workflows"
)

func demoCmd() *cobra.Command {
	var file, env string
	var rps, uiPort int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Deploy v1, then v2 under load, then a bad v3 that rolls back by itself",
		Long: `Runs the whole story on an embedded server: deploys v1 of the demo service,
starts steady load through the router, deploys v2 (promoted), then v3, a bad
build that fails half its requests: analysis catches it at 10% and Switchyard
rolls back by itself. Prints requests, failed requests, time per phase and
time to roll back. Expects the builds in bin/demo/ (make demo makes them).`,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.Context(), file, env, rps, uiPort) },
	}
	cmd.Flags().StringVarP(&file, "file", "f", "deployments/demo.yaml", "demo service spec")
	cmd.Flags().StringVarP(&env, "env", "e", "production", "environment")
	cmd.Flags().IntVar(&rps, "rps", 50, "load through the router, requests per second")
	cmd.Flags().IntVar(&uiPort, "ui-port", 8233, "Web UI port while the demo runs (0: none)")
	cmd.AddCommand(demoReleaseCmd())
	return cmd
}

func runDemo(ctx context.Context, file, env string, rps, uiPort int) error {
	svc, err := starter.ResolveSpec(file, env)
	if err != nil {
		return err
	}
	for _, v := range []string{"v1", "v2", "v3"} {
		bin := strings.ReplaceAll(svc.Run.Command[0], "{{version}}", v)
		if _, err := os.Stat(filepath.Join(svc.Dir, bin)); err != nil {
			return withCode(exitBadInput, fmt.Errorf("demo build %s missing (%v): run `make demo`, which builds bin/demo/v1..v3", v, err))
		}
	}
	// start from nothing: no slot running, no router config left from a previous run
	stateDir := filepath.Join(".switchyard", "demo")
	_ = activities.StopSlots(ctx, svc)
	defer func() { _ = activities.StopSlots(context.Background(), svc) }()

	s, stop, err := demoServer(ctx, stateDir, uiPort, workflows.SAService.GetName(), svc.Name)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Printf("service %s served on http://%s through the embedded router\n\n", svc.Name, svc.Router.Caddy.Listen)

	var results []demoResult
	var gen *load.Generator
	deploy := func(version string) error {
		fmt.Printf("── deploy %s ──\n", version)
		var before load.Result
		if gen != nil {
			before = gen.Snapshot()
		}
		t := time.Now()
		run, err := s.Deploy(ctx, svc, version, "demo", starter.DeployOptions{})
		if err != nil {
			return err
		}
		o, err := watchRun(ctx, s, svc.Name, svc.Environment, run.GetRunID(), os.Stdout, false)
		if err != nil {
			return err
		}
		r := demoResult{version: version, out: o, took: time.Since(t)}
		if gen != nil {
			after := gen.Snapshot()
			r.load = load.Result{Requests: after.Requests - before.Requests, Failed: after.Failed - before.Failed}
		}
		results = append(results, r)
		fmt.Printf("→ %s: %s\n\n", version, outcomeWord(o))
		return nil
	}
	if err := deploy("v1"); err != nil {
		return err
	}
	url := "http://" + svc.Router.Caddy.Listen + "/"
	gen = load.Start(url, rps, 10*time.Minute)
	fmt.Printf("load: %d requests/s to %s\n\n", rps, url)
	for _, v := range []string{"v2", "v3"} {
		if err := deploy(v); err != nil {
			gen.Stop()
			return err
		}
	}
	total := gen.Stop()

	return printDemoSummary(total, results)
}

// demoServer starts what a demo runs on, from nothing: an embedded Temporal
// server (its Web UI on uiPort if free), a client and a worker whose
// embedded router starts afresh in stateDir. It says where the Web UI finds
// the demo's runs (search key=value). stop ends them all.
func demoServer(ctx context.Context, stateDir string, uiPort int, key, value string) (*starter.Starter, func(), error) {
	_ = os.RemoveAll(filepath.Join(stateDir, "router"))
	if uiPort != 0 {
		if err := freeCheck(uiPort); err != nil {
			uiPort = 0
		}
	}
	srv, err := devserver.Start(devserver.Options{SearchAttributes: workflows.SearchAttributes, UIPort: uiPort, LogLevel: "fatal"})
	if err != nil {
		return nil, nil, err
	}
	cl, err := client.Dial(client.Options{HostPort: srv.HostPort, Logger: quietLogger()})
	if err != nil {
		srv.Stop()
		return nil, nil, err
	}
	wctx, stopWorker := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = worker.Run(wctx, cl, worker.Config{StateDir: stateDir}); close(done) }()
	stop := func() {
		stopWorker()
		<-done
		cl.Close()
		srv.Stop()
	}
	fmt.Printf("embedded Temporal server on %s", srv.HostPort)
	if srv.UIURL != "" {
		fmt.Printf(", Web UI %s (search %s=\"%s\")", srv.UIURL, key, value)
	}
	s := &starter.Starter{C: cl, TaskQueue: workflows.TaskQueue}
	if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", demoDashboardPort)); err == nil {
		fmt.Printf(", dashboard http://%s/", l.Addr())
		go func() { _ = serveDashboard(wctx, l, &dashboard.Server{Starter: s, WebUI: srv.UIURL}) }()
	}
	fmt.Println()
	return s, stop, nil
}

// demoDashboardPort serves the dashboard while a demo runs, if it is free.
const demoDashboardPort = 8234

// demoResult is how one deploy of the demo went.
type demoResult struct {
	version string
	out     *starter.Outcome
	load    load.Result
	took    time.Duration
}

// printDemoSummary prints the figures of the story and checks it went as
// told: v1 and v2 promoted, v3 rolled back.
func printDemoSummary(total load.Result, results []demoResult) error {
	fmt.Println("══ summary ══")
	fmt.Printf("load through the router: %s\n", total)
	for _, r := range results {
		fmt.Printf("%s: %-11s in %-8s", r.version, outcomeWord(r.out), r.took.Round(100*time.Millisecond))
		if r.version != "v1" {
			fmt.Printf("  requests %d, failed %d", r.load.Requests, r.load.Failed)
		}
		fmt.Println()
		if r.out.Status != nil {
			fmt.Printf("    phases: %s\n", phaseTimes(r.out.Status))
		}
		if r.out.Kind == workflows.ErrRolledBack && r.out.Status != nil {
			first, detect, back := rollbackTimes(r.out.Status)
			fmt.Printf("    reason: %s\n", r.out.Reason)
			fmt.Printf("    time to roll back: %s from first traffic to the bad version, %s from the decision to 100%% on the stable slot\n",
				back.Sub(first).Round(time.Millisecond), back.Sub(detect).Round(time.Millisecond))
		}
	}
	if len(results) != 3 || results[0].out.Kind != "" || results[1].out.Kind != "" || results[2].out.Kind != workflows.ErrRolledBack {
		return errors.New("demo: the story did not go as expected (v1, v2 promoted; v3 rolled back)")
	}
	fmt.Println("\nv1 and v2 promoted, v3 rolled back by itself; the stable slot kept serving.")
	return nil
}

// phaseTimes turns "phase X" events into time spent in each phase.
func phaseTimes(st *workflows.Status) string {
	var parts []string
	var last string
	var at time.Time
	for _, e := range st.Events {
		if !strings.HasPrefix(e.Message, "phase ") {
			continue
		}
		if last != "" {
			parts = append(parts, fmt.Sprintf("%s %s", last, e.At.Sub(at).Round(10*time.Millisecond)))
		}
		last, at = strings.TrimPrefix(e.Message, "phase "), e.At
	}
	if last != "" && !rollout.Phase(last).Done() {
		parts = append(parts, last)
	}
	return strings.Join(parts, ", ")
}

// rollbackTimes finds when the bad version first got traffic, when the
// rollback was decided, and when the stable slot had 100 % again.
func rollbackTimes(st *workflows.Status) (first, decided, back time.Time) {
	for _, e := range st.Events {
		switch {
		case first.IsZero() && strings.HasPrefix(e.Message, "step 1/"):
			first = e.At
		case strings.HasPrefix(e.Message, "rolling back"):
			decided = e.At
		case strings.HasPrefix(e.Message, "rolled back"):
			back = e.At
		}
	}
	return
}
