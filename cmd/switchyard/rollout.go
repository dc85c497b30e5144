package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"
)

type target struct {
	env, file string
}

func (t *target) flags(cmd *cobra.Command, needFile bool) {
	cmd.Flags().StringVarP(&t.env, "env", "e", envOr("SWITCHYARD_ENV", "production"), "environment ($SWITCHYARD_ENV)")
	if needFile {
		cmd.Flags().StringVarP(&t.file, "file", "f", "", "service spec (default deployments/<service>.yaml)")
	}
}

func (t *target) specPath(service string) string {
	if t.file != "" {
		return t.file
	}
	return filepath.Join("deployments", service+".yaml")
}

// loadSpec reads deployments/<service>.yaml (or -f) for the environment.
func loadSpec(service string, t *target) (*spec.Service, error) {
	path := t.specPath(service)
	svc, err := starter.ResolveSpec(path, t.env)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, withCode(exitBadInput, fmt.Errorf("unknown service %q: no spec at %s (use -f to name one)", service, path))
		}
		return nil, err
	}
	if svc.Name != service {
		return nil, withCode(exitBadInput, fmt.Errorf("%s describes service %q, not %q", path, svc.Name, service))
	}
	return svc, nil
}

func deployCmd(c *conn) *cobra.Command {
	var t target
	var version, output, commitTime string
	var detach bool
	var em emergencyFlags
	var force bool
	cmd := &cobra.Command{
		Use:   "deploy SERVICE --version V",
		Short: "Roll a version out to the idle slot and shift traffic to it",
		Long: `Starts a Deployment workflow: provision the idle slot, verify it, shift
traffic in steps with a bake time and analysis at each, promote, keep the old
slot warm, retire it. Waits and shows progress unless --detach.

Exit codes: 0 promoted, 2 bad input, 3 rolled back, 4 failed before any
traffic moved, 5 another rollout of the service is running, 1 other errors.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version == "" {
				return withCode(exitBadInput, errors.New("--version is required"))
			}
			if err := spec.CheckVersion(version); err != nil {
				return withCode(exitBadInput, fmt.Errorf("--%w", err))
			}
			if output != "text" && output != "json" {
				return withCode(exitBadInput, fmt.Errorf("-o must be text or json, got %q", output))
			}
			svc, err := loadSpec(args[0], &t)
			if err != nil {
				return err
			}
			emergency, err := em.get()
			if err != nil {
				return err
			}
			var committed time.Time
			if commitTime != "" {
				if committed, err = time.Parse(time.RFC3339, commitTime); err != nil {
					return withCode(exitBadInput, fmt.Errorf("--commit-time %q: want RFC 3339, as git log -1 --format=%%cI prints it", commitTime))
				}
			}
			return c.withStarter(func(s *starter.Starter) error {
				run, err := s.Deploy(cmd.Context(), svc, version, who(), starter.DeployOptions{Emergency: emergency, NoWait: em.noWait, CommitTime: committed, ForceSchema: force})
				if err != nil {
					return err
				}
				if output == "text" {
					fmt.Printf("deploying %s %s to %s (workflow %s, run %s)\n", svc.Name, version, svc.Environment, run.GetID(), run.GetRunID())
				}
				if detach {
					if output == "json" {
						return json.NewEncoder(os.Stdout).Encode(map[string]string{"workflowId": run.GetID(), "runId": run.GetRunID()})
					}
					fmt.Printf("follow it with: switchyard watch %s --env %s\n", svc.Name, svc.Environment)
					return nil
				}
				return follow(cmd.Context(), s, svc.Name, svc.Environment, run.GetRunID(), output)
			})
		},
	}
	t.flags(cmd, true)
	cmd.Flags().StringVar(&version, "version", "", "version to deploy (required)")
	cmd.Flags().BoolVar(&detach, "detach", false, "start the rollout and return at once")
	cmd.Flags().StringVar(&commitTime, "commit-time", os.Getenv("SWITCHYARD_COMMIT_TIME"), "when the version's commit was made (RFC 3339, git log -1 --format=%cI), for the lead time in history --stats")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().BoolVar(&force, "force", false, "go back to a version whose schema a contract migration removed, with no down migration to restore it (the version may then fail)")
	em.flags(cmd)
	return cmd
}

// emergencyFlags are the calendar's flags: --emergency and --reason (a
// bypass of freezes, recorded) and --no-wait (refuse outside the windows).
type emergencyFlags struct {
	on     bool
	reason string
	noWait bool
}

func (e *emergencyFlags) flags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&e.on, "emergency", false, "go through a freeze or a held error budget; needs --reason, and is recorded with who asked")
	cmd.Flags().StringVar(&e.reason, "reason", "", "why, with --emergency")
	cmd.Flags().BoolVar(&e.noWait, "no-wait", false, "outside the allowed windows, refuse (exit 5) instead of waiting for the next")
}

func (e *emergencyFlags) get() (*starter.Emergency, error) {
	switch {
	case !e.on && e.reason == "":
		return nil, nil
	case !e.on:
		return nil, withCode(exitBadInput, errors.New("--reason goes with --emergency"))
	case strings.TrimSpace(e.reason) == "":
		return nil, withCode(exitBadInput, errors.New("--emergency needs --reason: a bypass of a freeze is recorded with its reason"))
	}
	return &starter.Emergency{Reason: e.reason}, nil
}

// follow shows progress until the run ends and turns its outcome into an exit code.
func follow(ctx context.Context, s *starter.Starter, service, env, runID, output string) error {
	var out io.Writer = os.Stdout
	if output == "json" {
		out = io.Discard
	}
	o, err := watchRun(ctx, s, service, env, runID, out, output == "text" && isTTY(os.Stdout))
	if err != nil {
		return err
	}
	if output == "json" {
		_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"outcome": outcomeWord(o), "reason": o.Reason, "status": o.Status})
	}
	switch o.Kind {
	case "":
		if output == "text" {
			fmt.Printf("✔ promoted %s %s in %s\n", service, o.Status.Version, env)
		}
		return nil
	case workflows.ErrRolledBack:
		return withCode(exitRolledBack, errors.New(o.Reason))
	default:
		return withCode(exitFailed, errors.New(o.Reason))
	}
}

// watchRun prints a rollout's events to w as they happen (and, on a
// terminal, a live status line) until the run ends, then the events it had
// not printed yet: each event once, however the run ends.
func watchRun(ctx context.Context, s *starter.Starter, service, env, runID string, w io.Writer, tty bool) (*starter.Outcome, error) {
	p := &progress{w: w, tty: tty}
	var o *starter.Outcome
	err := pollUntilDone(func() {
		if st, err := s.Status(ctx, service, env); err == nil {
			p.show(st)
		}
	}, func() (err error) {
		o, err = s.Wait(ctx, s.C.GetWorkflow(ctx, workflows.DeploymentID(service, env), runID))
		return err
	})
	if err != nil {
		return nil, err
	}
	if o.Status != nil {
		p.events(o.Status)
	}
	return o, nil
}

// pollUntilDone calls poll every 250 ms until wait returns, and stops the
// poller before returning, so the caller prints the last events alone:
// each event once, however the run ends.
func pollUntilDone(poll func(), wait func() error) error {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			poll()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	err := wait()
	close(done)
	<-stopped
	return err
}

func outcomeWord(o *starter.Outcome) string {
	switch o.Kind {
	case "":
		return "promoted"
	case workflows.ErrRolledBack:
		return "rolled-back"
	}
	return "failed"
}

func isTTY(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress prints each new event as a line and, on a terminal, keeps one
// live line below them: phase, step, weight bar and bake time left.
type progress struct {
	w       io.Writer
	tty     bool
	printed int
	line    bool
}

func (p *progress) events(st *workflows.Status) {
	if p.line {
		fmt.Fprint(p.w, "\r\033[K")
		p.line = false
	}
	events, missed := st.EventsSince(p.printed)
	if missed > 0 {
		fmt.Fprintf(p.w, "… %d earlier events not shown (the whole story is in the workflow's history)\n", missed)
	}
	for _, e := range events {
		fmt.Fprintf(p.w, "%s  %s\n", e.At.Local().Format("15:04:05.000"), e.Message)
	}
	p.printed = st.EventCount()
}

func (p *progress) show(st *workflows.Status) {
	if p.printed == st.EventCount() && !p.tty {
		return
	}
	p.events(st)
	if p.tty && !st.Phase.Done() {
		fmt.Fprint(p.w, statusLine(st))
		p.line = true
	}
}

func statusLine(st *workflows.Status) string {
	pct := st.Traffic()
	bar := strings.Repeat("█", pct/5) + strings.Repeat("░", 20-pct/5)
	s := fmt.Sprintf("  %-12s %s %3d%% → %s", st.Phase, bar, pct, st.Version)
	if st.Step >= 0 {
		s += fmt.Sprintf("  step %d/%d", st.Step+1, len(st.Steps))
	}
	if st.Paused {
		s += "  PAUSED"
	} else if !st.BakeEndsAt.IsZero() {
		if left := time.Until(st.BakeEndsAt); left > 0 {
			s += fmt.Sprintf("  bake %s left", left.Round(time.Second))
		}
	}
	return s
}

func statusCmd(c *conn) *cobra.Command {
	var t target
	var output string
	cmd := &cobra.Command{
		Use:   "status SERVICE",
		Short: "Show the latest rollout of a service: phase, step, weights, checks",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStarter(func(s *starter.Starter) error {
				st, err := s.Status(cmd.Context(), args[0], t.env)
				if err != nil {
					return err
				}
				rb, _ := s.RollbackStatus(cmd.Context(), args[0], t.env)
				if rb != nil && rb.StartedAt.Before(st.StartedAt) {
					rb = nil // a rollback older than the latest rollout is history
				}
				if output == "json" {
					return json.NewEncoder(os.Stdout).Encode(map[string]any{"deployment": st, "rollback": rb})
				}
				printStatus(os.Stdout, st)
				if rb != nil {
					fmt.Println()
					printReport(rb)
					if !rb.Phase.Done() {
						fmt.Println(rollbackLine(rb))
					}
				}
				return nil
			})
		},
	}
	t.flags(cmd, false)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func printStatus(w io.Writer, st *workflows.Status) {
	fmt.Fprintf(w, "service      %s (%s)\n", st.Service, st.Environment)
	fmt.Fprintf(w, "version      %s", st.Version)
	if st.PreviousVersion != "" {
		fmt.Fprintf(w, " (previous %s)", st.PreviousVersion)
	}
	fmt.Fprintln(w)
	if st.Artifact != "" {
		fmt.Fprintf(w, "artifact     %s\n", st.Artifact)
	}
	phase := string(st.Phase)
	if st.Paused {
		phase += " (paused)"
	}
	fmt.Fprintf(w, "phase        %s\n", phase)
	if st.Step >= 0 {
		fmt.Fprintf(w, "step         %d of %d %s\n", st.Step+1, len(st.Steps), st.StepsText())
	}
	if st.Target == rollout.None {
		fmt.Fprintf(w, "weights      not read: the rollout ended before it read the router (the live slot was not touched)\n")
	} else {
		fmt.Fprintf(w, "weights      %s (new version in %s, stable %s)\n", st.Weights, st.Target, orNone(st.Stable))
	}
	if st.Reason != "" {
		fmt.Fprintf(w, "reason       %s\n", st.Reason)
	}
	for _, b := range st.Budgets {
		fmt.Fprintf(w, "budget       %s\n", b)
	}
	if st.Routes != nil && !st.Routes.Empty() {
		fmt.Fprintf(w, "routes       %s\n", st.Routes)
	}
	for _, sc := range st.Schema {
		fmt.Fprintf(w, "schema       %s (%s, %s)\n", sc, sc.At.Local().Format("2006-01-02 15:04:05"), sc.LevelText())
	}
	if !st.ContractAt.IsZero() {
		fmt.Fprintf(w, "schema       the contract of %s runs at %s\n", st.Version, st.ContractAt.Local().Format("2006-01-02 15:04:05"))
	}
	if g := st.Guard; g != nil {
		where := "in this rollout, while the old slot is warm"
		if g.Workflow != "" {
			where = "by workflow " + g.Workflow
		}
		fmt.Fprintf(w, "guard        %s until %s, %d judgement(s), %s; a breach restores %s\n", g.Phase, g.Until.Local().Format("2006-01-02 15:04:05"),
			g.Judged, where, orDash(g.KnownGood))
		if g.Last != "" {
			fmt.Fprintf(w, "             last: %s\n", g.Last)
		}
		if g.Reason != "" {
			fmt.Fprintf(w, "             breach: %s\n", g.Reason)
		}
	}
	if st.AnalysisSource != "" {
		fmt.Fprintf(w, "analysis     from %s\n", st.AnalysisSource)
	}
	for _, c := range st.Checks {
		mark := "✔"
		switch {
		case !c.Passed:
			mark = "✘"
		case c.Inconclusive:
			mark = "?"
		}
		slot := ""
		if c.Slot != "" {
			slot = " [" + string(c.Slot) + "]"
		}
		fmt.Fprintf(w, "check        %s %s%s %s\n", mark, c.Name, slot, c.Detail)
	}
	printMeasurements(w, st.Measurements)
	fmt.Fprintln(w, "events")
	for _, e := range st.Events {
		fmt.Fprintf(w, "  %s  %s\n", e.At.Local().Format("15:04:05.000"), e.Message)
	}
}

// printMeasurements shows the last analysis's measurements: each metric's
// decision, values, threshold and the query as sent.
func printMeasurements(w io.Writer, ms []workflows.Measured) {
	if len(ms) == 0 {
		return
	}
	last := ms[len(ms)-1].At
	fmt.Fprintf(w, "measured     %s at %d%% (%d measurements in all)\n", last.Local().Format("15:04:05.000"), ms[len(ms)-1].Weight, len(ms))
	for _, m := range ms {
		if !m.At.Equal(last) {
			continue
		}
		fmt.Fprintf(w, "  %-12s %-14s %s\n", m.Decision, m.Metric, measuredValues(m.Measurement))
		if m.Threshold != "" {
			fmt.Fprintf(w, "  %-12s %-14s threshold %s\n", "", "", m.Threshold)
		}
		if m.Reason != "" {
			fmt.Fprintf(w, "  %-12s %-14s %s\n", "", "", m.Reason)
		}
		fmt.Fprintf(w, "  %-12s %-14s query %s\n", "", "", m.Query)
		if m.BaselineQuery != "" {
			fmt.Fprintf(w, "  %-12s %-14s live  %s\n", "", "", m.BaselineQuery)
		}
	}
}

func measuredValues(m rollout.Measurement) string {
	v := func(f *float64) string {
		if f == nil {
			return "none"
		}
		return fmt.Sprintf("%.4g", *f)
	}
	s := "value " + v(m.Value)
	if m.Baseline != nil || m.BaselineQuery != "" {
		s += ", live " + v(m.Baseline)
	}
	return s
}

func orNone(s rollout.Slot) string {
	if s == rollout.None {
		return "none"
	}
	return string(s)
}

func watchCmd(c *conn) *cobra.Command {
	var t target
	cmd := &cobra.Command{
		Use:   "watch SERVICE",
		Short: "Follow the running rollout of a service until it ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStarter(func(s *starter.Starter) error {
				if s.RollbackRunning(cmd.Context(), args[0], t.env) {
					return followRollback(cmd.Context(), s, args[0], t.env)
				}
				if _, err := s.Status(cmd.Context(), args[0], t.env); err != nil {
					return err
				}
				return follow(cmd.Context(), s, args[0], t.env, "", "text")
			})
		},
	}
	t.flags(cmd, false)
	return cmd
}

func controlCmd(c *conn, name, short string) *cobra.Command {
	var t target
	var reason string
	cmd := &cobra.Command{
		Use:   name + " SERVICE",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sendControl(cmd.Context(), c, args[0], t.env, name, workflows.ControlRequest{By: who(), Reason: reason})
		},
	}
	t.flags(cmd, false)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the rollout's record")
	return cmd
}

func abortCmd(c *conn) *cobra.Command {
	var t target
	var reason string
	cmd := &cobra.Command{
		Use:   "abort SERVICE --reason TEXT",
		Short: "Put 100% back on the stable slot and end the rollout rolled back",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sendControl(cmd.Context(), c, args[0], t.env, workflows.Abort, workflows.AbortRequest{Reason: reason, By: who()})
		},
	}
	t.flags(cmd, false)
	cmd.Flags().StringVar(&reason, "reason", "aborted by an operator", "why, for the rollout's record")
	return cmd
}

func promoteCmd(c *conn) *cobra.Command {
	var t target
	var full bool
	cmd := &cobra.Command{
		Use:   "promote SERVICE [--full]",
		Short: "Skip the current bake, or with --full go to 100% at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return sendControl(cmd.Context(), c, args[0], t.env, workflows.Promote, workflows.PromoteRequest{Full: full, By: who()})
		},
	}
	t.flags(cmd, false)
	cmd.Flags().BoolVar(&full, "full", false, "go straight to 100%")
	return cmd
}

func sendControl(ctx context.Context, c *conn, service, env, name string, arg any) error {
	s, closeFn, err := c.starter()
	if err != nil {
		return err
	}
	defer closeFn()
	t := time.Now()
	if (name == workflows.Pause || name == workflows.Resume) && s.RollbackRunning(ctx, service, env) {
		req, _ := arg.(workflows.ControlRequest)
		rep, err := s.RollbackControl(ctx, service, env, name, req)
		if err != nil {
			return withCode(exitConflict, err)
		}
		fmt.Printf("%s rollback of %s in %s: done in %s; %s\n", name, service, env, time.Since(t).Round(time.Millisecond), rep.Weights)
		return nil
	}
	st, err := s.Control(ctx, service, env, name, arg)
	if err != nil {
		return withCode(exitConflict, err)
	}
	fmt.Printf("%s %s in %s: done in %s; phase %s, %s\n", name, service, env, time.Since(t).Round(time.Millisecond), st.Phase, st.Weights)
	return nil
}

// printRuns lists runs as a table; a release's runs span services and
// environments, so they are named on each row.
func printRuns(runs []starter.RunSummary, release bool) {
	where := func(string, string) string { return "" }
	head := ""
	if release {
		w := len("SERVICE")
		for _, r := range runs {
			w = max(w, len(r.Service))
		}
		where = func(svc, env string) string { return fmt.Sprintf("%-*s %-12s ", w, orDash(svc), orDash(env)) }
		head = where("SERVICE", "ENV")
	}
	fmt.Printf("%-20s %-9s %s%-10s %-13s %-8s %-10s %s\n", "STARTED", "KIND", head, "VERSION", "PHASE", "TRAFFIC", "DURATION", "RUN")
	for _, r := range runs {
		dur := "running"
		if !r.Close.IsZero() {
			dur = r.Close.Sub(r.Start).Round(time.Second).String()
		}
		kind, _, _ := strings.Cut(r.WorkflowID, "/")
		fmt.Printf("%-20s %-9s %s%-10s %-13s %-8s %-10s %s\n", r.Start.Local().Format("2006-01-02 15:04:05"), kind, where(r.Service, r.Environment),
			orDash(r.Version), r.Phase, fmt.Sprintf("%d%%", r.Traffic), dur, r.RunID)
		if r.Schema != "" {
			fmt.Printf("%20s schema: %s\n", "", r.Schema)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func historyCmd(c *conn) *cobra.Command {
	var t target
	var limit int
	var stats bool
	var since string
	cmd := &cobra.Command{
		Use:   "history SERVICE|RELEASE | --stats [--since 30d]",
		Short: "List past rollouts of a service (or a release's runs and rollouts), or every service's success metrics",
		Args: func(cmd *cobra.Command, args []string) error {
			if stats {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStarter(func(s *starter.Starter) error {
				if stats {
					d, err := parseSince(since)
					if err != nil {
						return withCode(exitBadInput, err)
					}
					return printStats(cmd.Context(), s, d, since)
				}
				runs, err := s.History(cmd.Context(), args[0], t.env, limit)
				if err != nil {
					return err
				}
				release := false
				if len(runs) == 0 {
					// a release's name: its runs and the rollouts they ran
					if runs, err = s.ReleaseHistory(cmd.Context(), args[0], limit); err != nil {
						return err
					}
					release = true
				}
				if len(runs) == 0 {
					fmt.Printf("no rollouts of %s in %s, and no release %s\n", args[0], t.env, args[0])
					return nil
				}
				printRuns(runs, release)
				return nil
			})
		},
	}
	t.flags(cmd, false)
	cmd.Flags().IntVar(&limit, "limit", 20, "how many rollouts")
	cmd.Flags().BoolVar(&stats, "stats", false, "success rate, rollout duration p50/p95, rollbacks and mean time to stable, per service and environment")
	cmd.Flags().StringVar(&since, "since", "30d", "with --stats: how far back (30d, 12h, 90m)")
	return cmd
}

// parseSince reads 30d, 12h or 90m.
func parseSince(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err != nil || days <= 0 {
			return 0, fmt.Errorf("--since %q: want a number of days like 30d", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--since %q: want 30d, 12h or 90m", s)
	}
	return d, nil
}

func printStats(ctx context.Context, s *starter.Starter, since time.Duration, label string) error {
	all, err := s.Stats(ctx, since)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		fmt.Printf("no rollouts in the last %s\n", label)
		return nil
	}
	fmt.Printf("%-24s %-12s %8s %8s %10s %10s %9s %14s\n", "SERVICE", "ENV", "ROLLOUTS", "SUCCESS", "P50", "P95", "ROLLBACKS", "MEAN→STABLE")
	for _, st := range all {
		fmt.Printf("%-24s %-12s %8d %7.1f%% %10s %10s %9d %14s\n", st.Service, st.Environment, st.Rollouts, 100*st.SuccessRate(),
			st.P50.Round(time.Millisecond), st.P95.Round(time.Millisecond), st.Rollbacks, st.MeanTimeToStable.Round(time.Millisecond))
	}
	fmt.Printf("\nDORA over the last %s\n", label)
	fmt.Printf("%-24s %-12s %12s %15s %16s %18s\n", "SERVICE", "ENV", "DEPLOYS/DAY", "CHANGE FAILURE", "TIME TO RESTORE", "LEAD TIME (p50)")
	for _, st := range all {
		lead := "-"
		if st.LeadTimes > 0 {
			lead = fmt.Sprintf("%s (%d)", st.LeadTime.Round(time.Second), st.LeadTimes)
		}
		restore := "-"
		if st.ChangeFailures > 0 {
			restore = st.TimeToRestore.Round(time.Millisecond).String()
		}
		fmt.Printf("%-24s %-12s %12.2f %14.1f%% %16s %18s\n", st.Service, st.Environment, st.DeploysPerDay, 100*st.ChangeFailureRate, restore, lead)
	}
	return nil
}
