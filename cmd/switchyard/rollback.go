package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"
)

func rollbackCmd(c *conn) *cobra.Command {
	var t target
	var strategy, reason string
	var detach bool
	cmd := &cobra.Command{
		Use:   "rollback SERVICE --strategy immediate|gradual|swap --reason TEXT",
		Short: "Go back to the previous version: at once, gradually, or by swapping environments",
		Long: `Starts a Rollback workflow. A rollout in progress is stopped first without
touching the router, so only one workflow ever writes it. After promotion the
previous slot stays warm for the spec's scaleDownDelay; later it is gone, and
the way back is to deploy the previous version again.

  immediate  one weight change: 100% on the previous slot
  gradual    back over rollback.gradual.duration (default 10m) in steps; pause,
             resume and escalate (to immediate) while it runs
  swap       flip everything back at once and keep the bad slot running,
             untouched, for investigation (switchyard retire stops it)

Exit codes: 0 rolled back, 2 bad input, 4 could not roll back, 5 refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := workflows.ValidStrategy(strategy); err != nil {
				return withCode(exitBadInput, fmt.Errorf("--strategy: %w", err))
			}
			svc, err := loadSpec(args[0], &t)
			if err != nil {
				return err
			}
			return c.withStarter(func(s *starter.Starter) error {
				run, err := s.Rollback(cmd.Context(), svc, workflows.Strategy(strategy), reason, who())
				if err != nil {
					return rollbackExit(err)
				}
				fmt.Printf("rolling back %s in %s (%s; workflow %s)\n", svc.Name, svc.Environment, strategy, run.GetID())
				if detach {
					return nil
				}
				return followRollback(cmd.Context(), s, svc.Name, svc.Environment)
			})
		},
	}
	t.flags(cmd, true)
	cmd.Flags().StringVar(&strategy, "strategy", string(workflows.Immediate), "immediate, gradual or swap")
	cmd.Flags().StringVar(&reason, "reason", "rollback requested by an operator", "why, for the report")
	cmd.Flags().BoolVar(&detach, "detach", false, "start the rollback and return at once")
	return cmd
}

// rollbackExit: a request that cannot be carried out as asked is bad input;
// anything else (a rollback running, a refused handover) is a refusal.
func rollbackExit(err error) error {
	var bad *starter.BadInputError
	if errors.As(err, &bad) {
		return withCode(exitBadInput, err)
	}
	return withCode(exitConflict, err)
}

// followRollback shows a rollback's events (and, on a terminal, the time
// left of a gradual one) until it ends, then its report.
func followRollback(ctx context.Context, s *starter.Starter, service, env string) error {
	tty := isTTY(os.Stdout)
	printed, line := 0, false
	for {
		rep, err := s.RollbackStatus(ctx, service, env)
		if err == nil {
			if line {
				fmt.Print("\r\033[K")
				line = false
			}
			for ; printed < len(rep.Events); printed++ {
				e := rep.Events[printed]
				fmt.Printf("%s  %s\n", e.At.Local().Format("15:04:05.000"), e.Message)
			}
			if rep.Phase.Done() {
				printReport(rep)
				if rep.Phase == rollout.PhaseFailed {
					return withCode(exitFailed, errors.New(rep.Error))
				}
				return nil
			}
			if tty {
				fmt.Print(rollbackLine(rep))
				line = true
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func rollbackLine(r *workflows.RollbackReport) string {
	s := fmt.Sprintf("  %s %s → %s  %s", r.Strategy, r.BadVersion, r.PreviousVersion, r.Weights)
	if r.Paused {
		return s + "  PAUSED"
	}
	if !r.NextStepAt.IsZero() {
		s += fmt.Sprintf("  next step in %s", time.Until(r.NextStepAt).Round(time.Second))
	}
	if r.Remaining > 0 {
		s += fmt.Sprintf(", about %s left", r.Remaining.Round(time.Second))
	}
	return s
}

func printReport(r *workflows.RollbackReport) {
	fmt.Println("rollback report")
	fmt.Printf("  service    %s (%s)\n", r.Service, r.Environment)
	fmt.Printf("  strategy   %s, requested by %s: %s\n", r.Strategy, r.By, r.Reason)
	fmt.Printf("  versions   %s (slot %s) → %s (slot %s)\n", r.BadVersion, r.From, r.PreviousVersion, r.To)
	fmt.Printf("  outcome    %s in %s, now %s\n", r.Phase, r.Duration().Round(time.Millisecond), r.Weights)
	if r.Error != "" {
		fmt.Printf("  error      %s\n", r.Error)
	}
	for _, w := range r.Timeline {
		fmt.Printf("  %s  %s\n", w.At.Local().Format("15:04:05.000"), w.Weights)
	}
	for _, c := range r.Checks {
		fmt.Printf("  check %v %s [%s] %s\n", c.Passed, c.Name, c.Slot, c.Detail)
		for _, m := range c.Measurements {
			fmt.Printf("    %s: %s, %s (threshold %s): %s\n", m.Metric, m.Decision, measuredValues(m), m.Threshold, m.Reason)
		}
	}
}

func rollbackControlCmd(c *conn) *cobra.Command {
	var t target
	cmd := &cobra.Command{
		Use:   "escalate SERVICE",
		Short: "Turn a running gradual rollback into an immediate one",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStarter(func(s *starter.Starter) error {
				start := time.Now()
				rep, err := s.RollbackControl(cmd.Context(), args[0], t.env, workflows.Escalate, workflows.ControlRequest{By: who()})
				if err != nil {
					return withCode(exitConflict, err)
				}
				fmt.Printf("escalated in %s: %s\n", time.Since(start).Round(time.Millisecond), rep.Weights)
				return nil
			})
		},
	}
	t.flags(cmd, false)
	return cmd
}

func retireCmd(c *conn) *cobra.Command {
	var t target
	var slot string
	cmd := &cobra.Command{
		Use:   "retire SERVICE --slot blue|green",
		Short: "Stop a slot that has no traffic (the bad slot a swap kept for investigation)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if slot != "blue" && slot != "green" {
				return withCode(exitBadInput, fmt.Errorf("--slot must be blue or green, got %q", slot))
			}
			svc, err := loadSpec(args[0], &t)
			if err != nil {
				return err
			}
			return c.withStarter(func(s *starter.Starter) error {
				if err := s.Retire(cmd.Context(), svc, rollout.Slot(slot)); err != nil {
					return rollbackExit(err)
				}
				fmt.Printf("retired slot %s of %s in %s\n", slot, svc.Name, svc.Environment)
				return nil
			})
		},
	}
	t.flags(cmd, true)
	cmd.Flags().StringVar(&slot, "slot", "", "the slot to stop")
	return cmd
}
