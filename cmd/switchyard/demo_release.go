//go:build !noserver

package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/load"
	"github.com/switchyard/switchyard/internal/release"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"
)

func demoReleaseCmd() *cobra.Command {
	var file string
	var rps, uiPort int
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Ship a backend and a frontend through staging and production as one release",
		Long: `Runs a release story on an embedded server: v1 of the shop's backend and
frontend through staging and production; then a release whose frontend (v3)
is bad: it rolls back by itself in staging and the backend (v2) goes back
with it, production untouched; then v2 of both, promoted in staging, soaked,
approved for production (the demo approves, as the on-call would) and
promoted there. Load runs through all four routers; the summary prints each
release's outcome and the requests and failures per router.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return runReleaseDemo(cmd.Context(), file, rps, uiPort) },
	}
	cmd.Flags().StringVarP(&file, "file", "f", "deployments/demo.release.yaml", "the demo's release")
	cmd.Flags().IntVar(&rps, "rps", 25, "load through each router, requests per second")
	cmd.Flags().IntVar(&uiPort, "ui-port", 8233, "Web UI port while the demo runs (0: none)")
	return cmd
}

func runReleaseDemo(ctx context.Context, file string, rps, uiPort int) error {
	r, err := release.Load(file)
	if err != nil {
		return err
	}
	routers := map[string]string{} // service/env → the router's address
	for _, e := range r.Environments {
		specs, err := r.ResolveSpecs(e.Name)
		if err != nil {
			return err
		}
		for _, svc := range r.ServiceNames() {
			s := specs[svc]
			for _, v := range []string{"v1", "v2", "v3"} {
				bin := strings.ReplaceAll(s.Run.Command[0], "{{version}}", v)
				if _, err := os.Stat(filepath.Join(s.Dir, bin)); err != nil {
					return withCode(exitBadInput, fmt.Errorf("demo build %s missing (%v): run `make demo-release`, which builds bin/demo/v1..v3", v, err))
				}
			}
			routers[svc+"/"+e.Name] = s.Router.Caddy.Listen
			_ = activities.StopSlots(ctx, s) // start from nothing
			defer func() { _ = activities.StopSlots(context.Background(), s) }()
		}
	}
	s, stop, err := demoServer(ctx, filepath.Join(".switchyard", "demo-release"), uiPort, workflows.SARelease.GetName(), r.Name)
	if err != nil {
		return err
	}
	defer stop()

	var gens map[string]*load.Generator
	var outcomes []releaseOutcome
	ship := func(backend, frontend string) error {
		set := fmt.Sprintf("shop-backend=%s,shop-frontend=%s", backend, frontend)
		fmt.Printf("\n── release %s %s ──\n", r.Name, set)
		before := map[string]load.Result{}
		for k, g := range gens {
			before[k] = g.Snapshot()
		}
		t := time.Now()
		run, err := s.StartRelease(ctx, r, map[string]string{"shop-backend": backend, "shop-frontend": frontend}, "", "demo", starter.DeployOptions{})
		if err != nil {
			return err
		}
		go approveWhenAsked(ctx, s, r.Name)
		st, err := followRelease(ctx, s, r.Name, run.GetRunID(), os.Stdout)
		if err != nil {
			return err
		}
		o := releaseOutcome{set: set, st: st, took: time.Since(t), loads: map[string]load.Result{}}
		for k, g := range gens {
			now := g.Snapshot()
			o.loads[k] = load.Result{Requests: now.Requests - before[k].Requests, Failed: now.Failed - before[k].Failed}
		}
		outcomes = append(outcomes, o)
		return nil
	}
	if err := ship("v1", "v1"); err != nil {
		return err
	}
	gens = map[string]*load.Generator{}
	for k, addr := range routers {
		gens[k] = load.Start("http://"+addr+"/", rps, 10*time.Minute)
	}
	defer func() {
		for _, g := range gens {
			g.Stop()
		}
	}()
	fmt.Printf("\nload: %d requests/s through each of the %d routers\n", rps, len(routers))
	for _, set := range [][2]string{{"v2", "v3"}, {"v2", "v2"}} {
		if err := ship(set[0], set[1]); err != nil {
			return err
		}
	}

	if err := printReleaseDemoSummary(outcomes); err != nil {
		return err
	}
	fmt.Println("\nthe bad frontend rolled back in staging and took the backend with it; production never saw it; v2 of both went through.")
	return nil
}

// releaseOutcome is how one release of the demo went, with the load
// through each router meanwhile.
type releaseOutcome struct {
	set   string
	st    *workflows.ReleaseStatus
	took  time.Duration
	loads map[string]load.Result
}

// printReleaseDemoSummary prints each release's outcome and load, and
// checks the story went as told.
func printReleaseDemoSummary(outcomes []releaseOutcome) error {
	fmt.Println("\n══ summary ══")
	for _, o := range outcomes {
		fmt.Printf("%s: %-11s in %s\n", o.set, o.st.Phase, o.took.Round(100*time.Millisecond))
		if o.st.Reason != "" {
			fmt.Printf("    reason: %s\n", o.st.Reason)
		}
		for _, k := range slices.Sorted(maps.Keys(o.loads)) {
			fmt.Printf("    %-26s requests %4d, failed %d\n", k, o.loads[k].Requests, o.loads[k].Failed)
		}
	}
	if len(outcomes) != 3 || outcomes[0].st.Phase != workflows.ReleasePromoted || outcomes[1].st.Phase != workflows.ReleaseRolledBack ||
		outcomes[2].st.Phase != workflows.ReleasePromoted {
		return errors.New("demo: the story did not go as expected (v1 promoted; the bad frontend's release rolled back; v2 promoted)")
	}
	for k, l := range outcomes[1].loads {
		if k != "shop-frontend/staging" && l.Failed > 0 {
			return fmt.Errorf("demo: %d requests failed through %s, which never ran the bad version", l.Failed, k)
		}
	}
	return nil
}

// approveWhenAsked approves the release's environment when it waits, as
// the on-call would from the CLI.
func approveWhenAsked(ctx context.Context, s *starter.Starter, name string) {
	for {
		st, err := s.ReleaseStatus(ctx, name)
		if err == nil && !st.EndedAt.IsZero() {
			return
		}
		if err == nil && st.Phase == workflows.ReleaseAwaitingApproval {
			fmt.Printf("   (the demo approves, as with: switchyard release approve %s --env %s --reason \"demo\")\n", name, st.Environment)
			_, _ = s.DecideRelease(ctx, name, workflows.Approve, workflows.ApprovalRequest{Environment: st.Environment, Reason: "demo", By: "demo"})
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
