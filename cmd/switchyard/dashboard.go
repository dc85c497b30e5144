package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/internal/dashboard"
	"github.com/switchyard/switchyard/starter"
)

func dashboardCmd(c *conn) *cobra.Command {
	var listen, webUI string
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the web dashboard: every service's rollout, weights and analysis, live",
		Long: `Serves a web page of every service and environment: the latest rollout's
version, state and traffic share, and for each rollout its steps, weights,
analysis measurements and events, pushed to the page as they change. It
reads everything from Temporal with the CLI's connection options and keeps
nothing. It binds 127.0.0.1 unless --listen says otherwise, and is
read-only.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStarter(func(s *starter.Starter) error {
				l, err := net.Listen("tcp", listen)
				if err != nil {
					return withCode(exitBadInput, fmt.Errorf("dashboard: --listen %s: %w", listen, err))
				}
				fmt.Printf("dashboard on http://%s/ (Ctrl-C stops)\n", l.Addr())
				return serveDashboard(cmd.Context(), l, &dashboard.Server{Starter: s, WebUI: webUI, Namespace: c.namespace})
			})
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8234", "address to serve the dashboard on")
	cmd.Flags().StringVar(&webUI, "temporal-ui", "", "the Temporal Web UI's address, for links to each run (e.g. http://127.0.0.1:8233)")
	return cmd
}

// serveDashboard serves d on l until ctx ends.
func serveDashboard(ctx context.Context, l net.Listener, d *dashboard.Server) error {
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
