package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/internal/dashboard"
	"github.com/switchyard/switchyard/starter"
)

func dashboardCmd(c *conn) *cobra.Command {
	var listen, webUI, tokenFile string
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the web dashboard: every service's rollout, weights and analysis, live",
		Long: `Serves a web page of every service and environment: the latest rollout's
version, state and traffic share, and for each rollout its steps, weights,
analysis measurements and events, pushed to the page as they change. It
reads everything from Temporal with the CLI's connection options and keeps
nothing. It binds 127.0.0.1 unless --listen says otherwise.

It is read-only unless it has a token: SWITCHYARD_DASHBOARD_TOKEN, or the
first line of --token-file. Whoever signs in with the token (and a name)
can pause, resume, abort, promote, roll back, approve, reject, freeze and
unfreeze, each after a confirmation with a reason, recorded in the run as
"NAME (dashboard)".`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := dashboardToken(tokenFile)
			if err != nil {
				return withCode(exitBadInput, err)
			}
			return c.withStarter(func(s *starter.Starter) error {
				l, err := net.Listen("tcp", listen)
				if err != nil {
					return withCode(exitBadInput, fmt.Errorf("dashboard: --listen %s: %w", listen, err))
				}
				mode := "read-only (set SWITCHYARD_DASHBOARD_TOKEN or --token-file to allow actions)"
				if token != "" {
					mode = "actions allowed to whoever signs in with the token"
				}
				fmt.Printf("dashboard on http://%s/, %s (Ctrl-C stops)\n", l.Addr(), mode)
				return serveDashboard(cmd.Context(), l, &dashboard.Server{Starter: s, WebUI: webUI, Namespace: c.namespace, Token: token})
			})
		},
	}
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file whose first line is the token that allows actions (else $SWITCHYARD_DASHBOARD_TOKEN)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8234", "address to serve the dashboard on")
	cmd.Flags().StringVar(&webUI, "temporal-ui", "", "the Temporal Web UI's address, for links to each run (e.g. http://127.0.0.1:8233)")
	return cmd
}

// serveDashboard serves d on l until ctx ends.
func serveDashboard(ctx context.Context, l net.Listener, d *dashboard.Server) error {
	// no WriteTimeout: live pages are long-held streams; bodies are small
	// and bounded, so a slow sender is cut off by ReadTimeout
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 32 << 10}
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

// dashboardToken reads the token that allows actions: the file's first
// line, else $SWITCHYARD_DASHBOARD_TOKEN, else none (read-only). Its value
// is never printed.
func dashboardToken(file string) (string, error) {
	token, from := strings.TrimSpace(os.Getenv("SWITCHYARD_DASHBOARD_TOKEN")), "SWITCHYARD_DASHBOARD_TOKEN"
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("dashboard: --token-file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		token, from = strings.TrimSpace(line), "--token-file "+file+": its first line"
	}
	if file != "" && token == "" || token != "" && len(token) < 16 {
		return "", fmt.Errorf("dashboard: %s: the token must be at least 16 characters", from)
	}
	return token, nil
}
