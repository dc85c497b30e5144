package main

import (
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"

	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/internal/incident"
)

func monitorCmd(c *conn) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Periodic monitoring of a live service on a Temporal Schedule (enable, disable, status, run)",
	}
	cmd.AddCommand(monitorEnableCmd(c), monitorDisableCmd(c), monitorStatusCmd(c), monitorRunCmd(c))
	return cmd
}

// monitorEnableCmd creates or updates the Schedule.
func monitorEnableCmd(c *conn) *cobra.Command {
	var t target
	var every time.Duration
	enable := &cobra.Command{
		Use:   "enable SERVICE [--every 5m]",
		Short: "Create (or update) the Schedule that runs the Monitor workflow",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := loadSpec(args[0], &t)
			if err != nil {
				return err
			}
			if every == 0 {
				every = svc.Monitor.Every.D()
			}
			if every < time.Second {
				return withCode(exitBadInput, fmt.Errorf("--every must be at least 1s, got %s", every))
			}
			return c.withStarter(func(s *starter.Starter) error {
				what, err := s.EnableMonitor(cmd.Context(), svc, every)
				if err != nil {
					return err
				}
				fmt.Printf("monitoring of %s in %s %s: every %s (schedule %s; pause it from the Web UI's Schedules page)\n",
					svc.Name, svc.Environment, what, every, workflows.MonitorID(svc.Name, svc.Environment))
				return nil
			})
		},
	}
	t.flags(enable, true)
	enable.Flags().DurationVar(&every, "every", 0, "interval (default: the spec's monitor.every, 5m)")
	return enable
}

// monitorDisableCmd deletes the Schedule.
func monitorDisableCmd(c *conn) *cobra.Command {
	var td target
	disable := &cobra.Command{
		Use:   "disable SERVICE",
		Short: "Delete the monitoring Schedule",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStarter(func(s *starter.Starter) error {
				if err := s.DisableMonitor(cmd.Context(), args[0], td.env); err != nil {
					return withCode(exitBadInput, err)
				}
				fmt.Printf("monitoring of %s in %s disabled\n", args[0], td.env)
				return nil
			})
		},
	}
	td.flags(disable, false)
	return disable
}

// monitorStatusCmd shows the last runs and open incidents.
func monitorStatusCmd(c *conn) *cobra.Command {
	var ts target
	status := &cobra.Command{
		Use:   "status SERVICE",
		Short: "Last runs and open incidents",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStarter(func(s *starter.Starter) error {
				d, last, err := s.MonitorStatus(cmd.Context(), args[0], ts.env)
				if err != nil {
					return withCode(exitBadInput, err)
				}
				paused := ""
				if d.Schedule.State.Paused {
					paused = " (paused)"
				}
				fmt.Printf("schedule     %s%s, %d runs so far\n", workflows.MonitorID(args[0], ts.env), paused, d.Info.NumActions)
				for _, a := range d.Info.RecentActions {
					fmt.Printf("run          %s\n", a.ActualTime.Local().Format("15:04:05"))
				}
				if len(d.Info.NextActionTimes) > 0 {
					fmt.Printf("next         %s\n", d.Info.NextActionTimes[0].Local().Format("15:04:05"))
				}
				if last != nil {
					printMonitorState(last)
				}
				return nil
			})
		},
	}
	ts.flags(status, false)
	return status
}

// monitorRunCmd runs the checks once now.
func monitorRunCmd(c *conn) *cobra.Command {
	var tr target
	run := &cobra.Command{
		Use:   "run SERVICE",
		Short: "Run the checks once now (incidents and alerts as a scheduled run)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := loadSpec(args[0], &tr)
			if err != nil {
				return err
			}
			return c.withStarter(func(s *starter.Starter) error {
				st, err := s.RunMonitor(cmd.Context(), svc)
				if err != nil {
					return err
				}
				printMonitorState(st)
				if len(st.Incidents) > 0 {
					return withCode(exitIncidents, fmt.Errorf("%d open incident(s)", len(st.Incidents)))
				}
				return nil
			})
		},
	}
	tr.flags(run, true)
	return run
}

func printMonitorState(st *incident.State) {
	fmt.Printf("last run     %s\n", st.RanAt.Local().Format("15:04:05"))
	for _, r := range st.Results {
		mark := "✔"
		if !r.Passed {
			mark = "✘"
		}
		fmt.Printf("check        %s %s: %s\n", mark, r.Name, r.Detail)
	}
	for _, in := range st.Incidents {
		fmt.Printf("incident     OPEN %s since %s (%d updates)\n", in.Key, in.OpenedAt.Local().Format("15:04:05"), in.Updates)
	}
	for _, d := range st.Delivery {
		fmt.Printf("alert        %s\n", d)
	}
	if st.Rollback != "" {
		fmt.Printf("rollback     %s\n", st.Rollback)
	}
}
