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

	"github.com/switchyard/switchyard/internal/release"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"
)

func releaseCmd(c *conn) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Ship several services through environments as one unit (start, status, approve, reject)",
		Long: `A release (deployments/<name>.release.yaml) names services by their specs,
the order they go in (after:), the environments in order, approvals, soak
times, allowed windows and freezes. Each environment's services roll out as
child Deployments in dependency order, holding their old slots warm until the
whole environment promoted; if one fails, the others roll back with it.`,
	}
	cmd.AddCommand(releaseStartCmd(c), releaseStatusCmd(c),
		releaseDecideCmd(c, workflows.Approve, "Let a release into the environment it waits at"),
		releaseDecideCmd(c, workflows.Reject, "Refuse a release the environment it waits at; the release ends"))
	return cmd
}

// releaseFile finds a release's file: -f, else deployments/<name>.release.yaml.
func releaseFile(name, file string) string {
	if file != "" {
		return file
	}
	return filepath.Join("deployments", name+".release.yaml")
}

func loadRelease(name, file string) (*release.Release, error) {
	path := releaseFile(name, file)
	r, err := release.Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, withCode(exitBadInput, fmt.Errorf("unknown release %q: no release file at %s (use -f to name one)", name, path))
	}
	if err != nil {
		return nil, err
	}
	if r.Name != name {
		return nil, withCode(exitBadInput, fmt.Errorf("%s describes release %q, not %q", path, r.Name, name))
	}
	return r, nil
}

func releaseStartCmd(c *conn) *cobra.Command {
	var file, set string
	var detach bool
	cmd := &cobra.Command{
		Use:   "start NAME --set svc=version,...",
		Short: "Start a release and follow it; the exit code says how it ended",
		Long: `Exit codes: 0 promoted in every environment, 2 bad input, 3 rolled back,
4 failed, rejected or timed out, 5 already running or frozen.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := loadRelease(args[0], file)
			if err != nil {
				return err
			}
			versions, err := starter.ParseVersions(r, set)
			if err != nil {
				return withCode(exitBadInput, err)
			}
			return c.withStarter(func(s *starter.Starter) error {
				run, err := s.StartRelease(cmd.Context(), r, versions, who())
				if err != nil {
					return err
				}
				fmt.Printf("release %s started (workflow %s, run %s)\n", r.Name, run.GetID(), run.GetRunID())
				if detach {
					fmt.Printf("follow it with: switchyard release status %s\n", r.Name)
					return nil
				}
				st, err := followRelease(cmd.Context(), s, r.Name, run.GetRunID(), os.Stdout)
				if err != nil {
					return err
				}
				return releaseExit(st)
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "release file (default deployments/NAME.release.yaml)")
	cmd.Flags().StringVar(&set, "set", "", "the version of every service: backend=v2,frontend=v7")
	cmd.Flags().BoolVar(&detach, "detach", false, "start the release and return at once")
	return cmd
}

// followRelease prints a release's events as they happen, each once, until
// it ends, then its services' outcome.
func followRelease(ctx context.Context, s *starter.Starter, name, runID string, w io.Writer) (*workflows.ReleaseStatus, error) {
	printed := 0
	show := func(st *workflows.ReleaseStatus) {
		for ; printed < len(st.Events); printed++ {
			e := st.Events[printed]
			fmt.Fprintf(w, "%s  %s\n", e.At.Local().Format("15:04:05.000"), e.Message)
		}
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if st, err := s.ReleaseStatus(ctx, name); err == nil {
				show(st)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	st, err := s.WaitRelease(ctx, s.C.GetWorkflow(ctx, workflows.ReleaseID(name), runID))
	close(done)
	<-stopped
	if err != nil {
		return nil, err
	}
	show(st)
	printReleaseServices(w, st)
	return st, nil
}

func printReleaseServices(w io.Writer, st *workflows.ReleaseStatus) {
	fmt.Fprintf(w, "release %s: %s", st.Name, st.Phase)
	if st.Reason != "" {
		fmt.Fprintf(w, " (%s)", st.Reason)
	}
	fmt.Fprintln(w)
	for _, sv := range st.Services {
		fmt.Fprintf(w, "  %-12s %-12s %-8s %-12s %s\n", sv.Environment, sv.Service, sv.Version, sv.Phase, sv.Reason)
	}
}

func releaseExit(st *workflows.ReleaseStatus) error {
	switch st.Phase {
	case workflows.ReleasePromoted:
		return nil
	case workflows.ReleaseRolledBack:
		return withCode(exitRolledBack, fmt.Errorf("release %s rolled back: %s", st.Name, st.Reason))
	}
	return withCode(exitFailed, fmt.Errorf("release %s %s: %s", st.Name, st.Phase, st.Reason))
}

func releaseStatusCmd(c *conn) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "The release's phase, the environment it is in, each service's phase and approvals",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStarter(func(s *starter.Starter) error {
				st, err := s.ReleaseStatus(cmd.Context(), args[0])
				if err != nil {
					return withCode(exitBadInput, err)
				}
				if output == "json" {
					return json.NewEncoder(os.Stdout).Encode(st)
				}
				printReleaseServices(os.Stdout, st)
				if st.Environment != "" {
					fmt.Printf("environment  %s\n", st.Environment)
				}
				if !st.WaitingUntil.IsZero() {
					fmt.Printf("waiting until %s\n", st.WaitingUntil.Local().Format(time.RFC1123))
				}
				for _, a := range st.Approvals {
					line := fmt.Sprintf("approval     %s: %s", a.Environment, orWaiting(a.Decision))
					if a.By != "" {
						line += " by " + a.By
					}
					if a.Decision == "" && !a.Deadline.IsZero() {
						line += fmt.Sprintf(" (deadline %s; switchyard release approve %s --env %s --reason ...)", a.Deadline.Local().Format(time.RFC1123), st.Name, a.Environment)
					}
					fmt.Println(line)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func orWaiting(s string) string {
	if s == "" {
		return "waiting"
	}
	return s
}

func releaseDecideCmd(c *conn, update, short string) *cobra.Command {
	var env, reason string
	cmd := &cobra.Command{
		Use:   update + " NAME --env ENV --reason TEXT",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" || strings.TrimSpace(reason) == "" {
				return withCode(exitBadInput, errors.New("--env and --reason are required: the decision is recorded"))
			}
			return c.withStarter(func(s *starter.Starter) error {
				st, err := s.DecideRelease(cmd.Context(), args[0], update, workflows.ApprovalRequest{Environment: env, Reason: reason, By: who()})
				if err != nil {
					return err
				}
				fmt.Printf("release %s: %s %sd (phase %s)\n", st.Name, env, update, st.Phase)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&env, "env", "e", "", "the environment the release waits at")
	cmd.Flags().StringVar(&reason, "reason", "", "why (a change ticket, say); recorded with who decided")
	return cmd
}
