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

	"github.com/switchyard/switchyard/internal/access"
	"github.com/switchyard/switchyard/internal/dashboard"
	"github.com/switchyard/switchyard/starter"
)

func dashboardCmd(c *conn) *cobra.Command {
	var listen, webUI, tokenFile, rolesFile string
	var oc dashboard.OIDC
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
"NAME (dashboard)". The token is for trying it out.

In production, sign people in with your OpenID Connect provider:
--oidc-issuer, --oidc-client-id, --oidc-redirect-url (this dashboard's
/auth/callback) and SWITCHYARD_OIDC_CLIENT_SECRET. Then every page needs a
sign-in, each action is recorded with the identity the provider verified
(its e-mail), and --roles FILE says who may do what to which service in
which environment (deployments/roles.yaml).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := dashboardToken(tokenFile)
			if err != nil {
				return withCode(exitBadInput, err)
			}
			var oidcCfg *dashboard.OIDC
			if oc.Issuer != "" {
				oc.ClientSecret = os.Getenv("SWITCHYARD_OIDC_CLIENT_SECRET")
				if oc.ClientID == "" || oc.RedirectURL == "" {
					return withCode(exitBadInput, errors.New("dashboard: --oidc-issuer needs --oidc-client-id and --oidc-redirect-url"))
				}
				oidcCfg, token = &oc, ""
			}
			if token != "" && oidcCfg == nil && !loopbackListen(listen) {
				return withCode(exitBadInput, fmt.Errorf("dashboard: --listen %s: the shared token is for a dashboard on this machine (dev, a laptop): bind 127.0.0.1, or sign people in with --oidc-issuer", listen))
			}
			var roles *access.Policy
			if rolesFile != "" {
				if roles, err = access.Load(rolesFile); err != nil {
					return withCode(exitBadInput, fmt.Errorf("dashboard: --roles: %w", err))
				}
			}
			return c.withStarter(func(s *starter.Starter) error {
				l, err := net.Listen("tcp", listen)
				if err != nil {
					return withCode(exitBadInput, fmt.Errorf("dashboard: --listen %s: %w", listen, err))
				}
				mode := "read-only (set SWITCHYARD_DASHBOARD_TOKEN or --token-file to allow actions)"
				switch {
				case oidcCfg != nil:
					mode = "sign-in with " + oidcCfg.Issuer
				case token != "":
					mode = "actions allowed to whoever signs in with the token"
				}
				if roles != nil {
					mode += ", roles from " + roles.Path
				}
				fmt.Printf("dashboard on http://%s/, %s (Ctrl-C stops)\n", l.Addr(), mode)
				return serveDashboard(cmd.Context(), l, &dashboard.Server{Starter: s, WebUI: webUI, Namespace: c.namespace, Token: token, OIDC: oidcCfg, Roles: roles})
			})
		},
	}
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file whose first line is the token that allows actions (else $SWITCHYARD_DASHBOARD_TOKEN)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8234", "address to serve the dashboard on")
	cmd.Flags().StringVar(&oc.Issuer, "oidc-issuer", "", "sign people in with this OpenID Connect provider (its issuer URL)")
	cmd.Flags().StringVar(&oc.ClientID, "oidc-client-id", "", "the dashboard's client ID at the provider (secret: $SWITCHYARD_OIDC_CLIENT_SECRET)")
	cmd.Flags().StringVar(&oc.RedirectURL, "oidc-redirect-url", "", "this dashboard's /auth/callback as the provider knows it")
	cmd.Flags().StringVar(&oc.GroupsClaim, "oidc-groups-claim", "groups", "the ID token's claim listing the user's groups")
	cmd.Flags().StringVar(&rolesFile, "roles", "", "who may do what to which service in which environment (deployments/roles.yaml)")
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

// loopbackListen says whether a listen address is on this machine only.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
