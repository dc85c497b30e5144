package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
	cmd.AddCommand(releaseStartCmd(c), releaseStatusCmd(c), releaseRollbackCmd(c),
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
	var file, set, setFrom string
	var detach bool
	var em emergencyFlags
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
			emergency, err := em.get()
			if err != nil {
				return err
			}
			if set != "" && setFrom != "" {
				return withCode(exitBadInput, errors.New("--set and --set-from: give one"))
			}
			if set == "" && setFrom == "" && len(r.Environments) > 1 {
				setFrom = r.Environments[0].Name // what passed the first environment goes on
			}
			from := ""
			if setFrom != "" {
				_, i := r.Environment(setFrom)
				if i < 0 || i == len(r.Environments)-1 {
					return withCode(exitBadInput, fmt.Errorf("--set-from %s: not an environment of release %s with one after it", setFrom, r.Name))
				}
				from = r.Environments[i+1].Name
			}
			var versions map[string]string
			if set != "" || setFrom == "" {
				var err error
				if versions, err = starter.ParseVersions(r, set); err != nil {
					return withCode(exitBadInput, err)
				}
			}
			return c.withStarter(func(s *starter.Starter) error {
				if setFrom != "" {
					var err error
					if versions, err = s.PassedVersions(cmd.Context(), r.Name, setFrom); err != nil {
						return err
					}
					fmt.Printf("versions that passed %s: %s; starting at %s\n", setFrom, versionsText(versions), from)
				}
				run, err := s.StartRelease(cmd.Context(), r, versions, from, who(), starter.DeployOptions{Emergency: emergency, NoWait: em.noWait})
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
	cmd.Flags().StringVar(&setFrom, "set-from", "", "the versions of the newest run that promoted every service in this environment; start at the next one (the default without --set)")
	cmd.Flags().BoolVar(&detach, "detach", false, "start the release and return at once")
	em.flags(cmd)
	return cmd
}

func releaseRollbackCmd(c *conn) *cobra.Command {
	var file, env, reason, strategy string
	cmd := &cobra.Command{
		Use:   "rollback NAME --env ENV --reason TEXT",
		Short: "Put the previous versions back in one environment after a release ended, dependents first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" || strings.TrimSpace(reason) == "" {
				return withCode(exitBadInput, errors.New("--env and --reason are required: the rollback is recorded"))
			}
			r, err := loadRelease(args[0], file)
			if err != nil {
				return err
			}
			return c.withStarter(func(s *starter.Starter) error {
				run, err := s.RollbackRelease(cmd.Context(), r, env, workflows.Strategy(strategy), reason, who())
				if err != nil {
					return err
				}
				fmt.Printf("rolling release %s back in %s (workflow %s, run %s)\n", r.Name, env, run.GetID(), run.GetRunID())
				st, err := followRelease(cmd.Context(), s, r.Name, run.GetRunID(), os.Stdout)
				if err != nil {
					return err
				}
				return releaseExit(st)
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "release file (default deployments/NAME.release.yaml)")
	cmd.Flags().StringVarP(&env, "env", "e", "", "the environment to put back")
	cmd.Flags().StringVar(&reason, "reason", "", "why; recorded with who asked")
	cmd.Flags().StringVar(&strategy, "strategy", string(starter.Staged), "staged (each service's steps and bakes) or immediate (provision, check, cut over at once)")
	return cmd
}

func freezeCmd(c *conn) *cobra.Command {
	var file, reason string
	cmd := &cobra.Command{
		Use:   "freeze RELEASE --reason TEXT",
		Short: "Freeze a release: new releases and deploys of its services are refused, a running one pauses",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return withCode(exitBadInput, errors.New("--reason is required: a freeze is recorded with its reason"))
			}
			r, err := loadRelease(args[0], file)
			if err != nil {
				return err
			}
			return c.withStarter(func(s *starter.Starter) error {
				if err := s.Freeze(cmd.Context(), r.Name, r.ServiceNames(), reason, who()); err != nil {
					return err
				}
				fmt.Printf("release %s frozen (%s): new releases and deploys of %s are refused; unfreeze with: switchyard unfreeze %s\n",
					r.Name, reason, strings.Join(r.ServiceNames(), ", "), r.Name)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "release file (default deployments/RELEASE.release.yaml)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (an incident, say); recorded with who froze it")
	return cmd
}

func unfreezeCmd(c *conn) *cobra.Command {
	return &cobra.Command{
		Use:   "unfreeze RELEASE",
		Short: "End a release's freeze; a release it paused goes on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStarter(func(s *starter.Starter) error {
				if err := s.Unfreeze(cmd.Context(), args[0], who()); err != nil {
					return err
				}
				fmt.Printf("release %s unfrozen\n", args[0])
				return nil
			})
		},
	}
}

func versionsText(v map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(v)) {
		parts = append(parts, k+"="+v[k])
	}
	return strings.Join(parts, ",")
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
	var st *workflows.ReleaseStatus
	err := pollUntilDone(func() {
		if cur, err := s.ReleaseStatus(ctx, name); err == nil {
			show(cur)
		}
	}, func() (err error) {
		st, err = s.WaitRelease(ctx, s.C.GetWorkflow(ctx, workflows.ReleaseID(name), runID))
		return err
	})
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
		fmt.Fprintf(w, "  %-12s %-20s %-8s %-12s %s\n", sv.Environment, sv.Service, sv.Version, sv.Phase, sv.Reason)
		for _, sc := range sv.Schema {
			fmt.Fprintf(w, "  %-12s %-20s schema: %s (%s)\n", "", "", sc, sc.At.Local().Format("15:04:05"))
		}
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
