package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"
	sdklog "go.temporal.io/sdk/log"

	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/worker"
)

func workerCmd(c *conn) *cobra.Command {
	var stateDir, metricsAddr string
	var stickyCache, maxActivities int
	var doraEvery, doraWindow time.Duration
	var pprofAddr string
	var buildID, deploymentName, policy string
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a worker against a Temporal server (--address)",
		Long: `Runs a worker. It is a version (--build-id, default this binary's build)
of a Temporal Worker Deployment (--deployment-name, default the task queue):
each rollout and rollback runs to its end on the build that started it, so a
new build can start beside the old one at any time. The first build of a
deployment makes itself current; to upgrade, start the new build, then
run 'switchyard worker current BUILD_ID': new rollouts start on it, running
ones finish on the old build, which can be stopped once none is left
('switchyard worker current' lists the builds and what runs on them).
--build-id "" runs an unversioned worker.

--policy FILE holds every spec to what this worker allows it to run, read
and reach (commands, environment variables, hosts, Compose privileges; see
deployments/worker-policy.yaml). Without it a spec may run anything the
worker's user can.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reach, err := loadReach(policy)
			if err != nil {
				return err
			}
			if pprofAddr != "" {
				stop, err := worker.ServePprof(pprofAddr)
				if err != nil {
					return err
				}
				defer stop()
				fmt.Printf("pprof on http://%s/debug/pprof/\n", pprofAddr)
			}
			if metricsAddr != "" {
				mh, stopMetrics, err := worker.ServeMetrics(metricsAddr)
				if err != nil {
					return err
				}
				defer stopMetrics()
				c.metrics = mh
				fmt.Printf("metrics on http://%s/metrics\n", metricsAddr)
			}
			cl, err := c.dial()
			if err != nil {
				return err
			}
			defer cl.Close()
			if c.metrics != nil && doraEvery > 0 {
				go worker.ReportDORA(cmd.Context(), &starter.Starter{C: cl, TaskQueue: c.taskQueue}, c.metrics, doraEvery, doraWindow,
					func(f string, a ...any) { fmt.Printf(f+"\n", a...) })
			}
			fmt.Printf("worker on %s, namespace %s, task queue %s, build %s, %s\n", c.address, c.namespace, c.taskQueue, orUnversioned(buildID), policyLine(reach))
			return worker.Run(cmd.Context(), cl, worker.Config{TaskQueue: c.taskQueue, Namespace: c.namespace, StateDir: stateDir, Reach: reach,
				BuildID: buildID, DeploymentName: deploymentName, Logf: func(f string, a ...any) { fmt.Printf(f+"\n", a...) },
				StickyCacheSize: stickyCache, MaxConcurrentActivities: maxActivities})
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", ".switchyard", "where an embedded router keeps its config")
	cmd.Flags().StringVar(&metricsAddr, "metrics", "", "serve Prometheus /metrics here, like 127.0.0.1:9464")
	cmd.Flags().StringVar(&pprofAddr, "pprof", "", "serve Go's /debug/pprof here, on a loopback address like 127.0.0.1:6060 (for finding where memory goes)")
	cmd.Flags().DurationVar(&doraEvery, "dora-every", 5*time.Minute, "with --metrics: how often the DORA figures are read from history (0: never)")
	cmd.Flags().DurationVar(&doraWindow, "dora-window", 30*24*time.Hour, "with --metrics: the period the DORA figures cover")
	cmd.Flags().IntVar(&stickyCache, "sticky-cache", 1000, "workflows kept in memory between tasks (bounds memory; evicted ones replay)")
	cmd.Flags().IntVar(&maxActivities, "max-activities", 200, "activities run at once by this worker")
	cmd.Flags().StringVar(&buildID, "build-id", binaryBuildID(), "this worker's version in the worker deployment (\"\": unversioned)")
	cmd.Flags().StringVar(&deploymentName, "deployment-name", "", "the Temporal worker deployment (default: the task queue)")
	cmd.Flags().StringVar(&policy, "policy", "", "worker policy file: what specs may run, read and reach (default: anything)")
	logLevelFlag(cmd, c)
	cmd.AddCommand(workerCurrentCmd(c))
	return cmd
}

func freeCheck(port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	return l.Close()
}

// logLevelFlag adds --log-level to a command that runs a worker and sets
// c.logger from it before the command runs.
func logLevelFlag(cmd *cobra.Command, c *conn) {
	level := cmd.Flags().String("log-level", "info", "the worker's log: debug (every timer and activity), info, warn or error")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		var l slog.Level
		if err := l.UnmarshalText([]byte(*level)); err != nil {
			return withCode(exitBadInput, fmt.Errorf("--log-level: %q is not a level (use debug, info, warn or error)", *level))
		}
		c.logger = sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})))
		return nil
	}
}

func quietLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func loadReach(path string) (*spec.Reach, error) {
	if path == "" {
		return nil, nil
	}
	r, err := spec.LoadReach(path)
	if err != nil {
		return nil, withCode(exitBadInput, fmt.Errorf("--policy: %w", err))
	}
	return r, nil
}

func policyLine(r *spec.Reach) string {
	if r == nil {
		return "no --policy (specs may run anything this user can)"
	}
	return "policy " + r.Path
}
