//go:build !noserver

package main

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/internal/dashboard"
	"github.com/switchyard/switchyard/internal/devserver"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/worker"
	"github.com/switchyard/switchyard/workflows"
)

func devCmd(c *conn) *cobra.Command {
	var stateDir string
	var port, uiPort, dashPort int
	var ephemeral bool
	var metricsAddr string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run an embedded Temporal server (SQLite file), its Web UI and a worker",
		Long: `Runs everything Switchyard needs on one machine with nothing but Go: a
Temporal server on a SQLite file under --state-dir (state survives restarts, and
rollouts in flight resume), its Web UI, a worker, and, for specs whose router
is "embedded", an in-process Caddy.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db := filepath.Join(stateDir, "dev", "temporal.db")
			if ephemeral {
				db = ""
			}
			srv, err := devserver.Start(devserver.Options{SearchAttributes: workflows.SearchAttributes, DBFile: db, Port: port, UIPort: uiPort, Namespace: c.namespace})
			if err != nil {
				return err
			}
			defer srv.Stop()
			mh, stopMetrics, err := worker.ServeMetrics(metricsAddr)
			if err != nil {
				return err
			}
			defer stopMetrics()
			cl, err := client.Dial(client.Options{HostPort: srv.HostPort, Namespace: c.namespace, MetricsHandler: mh, Logger: c.logger})
			if err != nil {
				return err
			}
			defer cl.Close()
			fmt.Printf("Temporal server  %s (namespace %s, state %s)\n", srv.HostPort, c.namespace, orMemory(db))
			fmt.Printf("metrics          http://%s/metrics\n", metricsAddr)
			if srv.UIURL != "" {
				fmt.Printf("Web UI           %s\n", srv.UIURL)
			}
			fmt.Printf("worker           task queue %s\n", c.taskQueue)
			if dashPort != 0 {
				l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", dashPort))
				if err != nil {
					return fmt.Errorf("dashboard: --dashboard-port %d: %w (0 runs none)", dashPort, err)
				}
				fmt.Printf("dashboard        http://%s/\n", l.Addr())
				token, err := dashboardToken("")
				if err != nil {
					return err
				}
				d := &dashboard.Server{Starter: &starter.Starter{C: cl, TaskQueue: c.taskQueue}, WebUI: srv.UIURL, Namespace: c.namespace, Token: token}
				go func() { _ = serveDashboard(cmd.Context(), l, d) }()
			}
			go worker.ReportDORA(cmd.Context(), &starter.Starter{C: cl, TaskQueue: c.taskQueue}, mh, time.Minute, 30*24*time.Hour,
				func(string, ...any) {}) // the DORA figures on /metrics, as a worker's
			fmt.Println("ready: switchyard deploy SERVICE --env ENV --version V   (Ctrl-C stops)")
			return worker.Run(cmd.Context(), cl, worker.Config{TaskQueue: c.taskQueue, Namespace: c.namespace, StateDir: stateDir})
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", ".switchyard", "where the server's database and the embedded router's config live")
	cmd.Flags().IntVar(&port, "port", 7233, "frontend port")
	cmd.Flags().IntVar(&uiPort, "ui-port", 8233, "Web UI port (0: no UI)")
	cmd.Flags().IntVar(&dashPort, "dashboard-port", 8234, "Switchyard dashboard port on 127.0.0.1 (0: none)")
	cmd.Flags().BoolVar(&ephemeral, "ephemeral", false, "keep the server's state in memory only")
	cmd.Flags().StringVar(&metricsAddr, "metrics", "127.0.0.1:9464", "serve Prometheus /metrics here")
	logLevelFlag(cmd, c)
	return cmd
}

func orMemory(db string) string {
	if db == "" {
		return "in memory"
	}
	return db
}
