//go:build !noserver

package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	_ "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql" // the production store
	"go.temporal.io/server/temporal"

	"github.com/switchyard/switchyard/internal/access"
	"github.com/switchyard/switchyard/internal/authz"
)

// temporalServerCmd runs the Temporal server this binary is built with,
// from a server config like the stock one's, with Switchyard's authorizer:
// Temporal's JWT roles per namespace, and the roles file per service and
// environment for every call that changes a rollout.
func temporalServerCmd() *cobra.Command {
	var root, configDir, env, rolesFile string
	var services []string
	cmd := &cobra.Command{
		Use:   "temporal-server",
		Short: "Run the Temporal server with Switchyard's authorizer (roles per service and environment)",
		Long: `Runs the Temporal server Switchyard is built with (the version in DESIGN.md)
from a config directory like the stock server's (--root, --config, --env),
with its JWT claim mapper and Switchyard's authorizer: Temporal's namespace
roles from the token's permissions first, then, for every call that starts,
updates, signals, cancels or terminates a rollout, rollback, release or
freeze, the roles file (--roles, like deployments/roles.yaml) by the
token's subject. Nobody gets round it: it runs in the frontend, before the
call reaches a workflow. A token with temporal-system:admin is not held to
the roles (the setup job, operators).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			roles, err := access.Load(rolesFile)
			if err != nil {
				return withCode(exitBadInput, fmt.Errorf("temporal-server: --roles: %w", err))
			}
			cfg, err := config.Load(config.WithEnv(env), config.WithConfigDir(filepath.Join(root, configDir)))
			if err != nil {
				return withCode(exitBadInput, fmt.Errorf("temporal-server: %w", err))
			}
			if cfg.Global.Authorization.ClaimMapper != "default" {
				return withCode(exitBadInput, fmt.Errorf("temporal-server: the config's global.authorization.claimMapper must be default (JWTs): the roles need a verified subject"))
			}
			logger := log.NewZapLogger(log.BuildZapLogger(cfg.Log))
			claims, err := authorization.GetClaimMapperFromConfig(&cfg.Global.Authorization, logger)
			if err != nil {
				return fmt.Errorf("temporal-server: claim mapper: %w", err)
			}
			audience, err := authorization.GetAudienceMapperFromConfig(&cfg.Global.Authorization)
			if err != nil {
				return fmt.Errorf("temporal-server: audience mapper: %w", err)
			}
			s, err := temporal.NewServer(temporal.ForServices(services), temporal.WithConfig(cfg), temporal.WithLogger(logger),
				temporal.InterruptOn(temporal.InterruptCh()), temporal.WithAuthorizer(authz.New(roles)),
				temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claims }),
				temporal.WithAudienceGetter(func(*config.Config) authorization.JWTAudienceMapper { return audience }))
			if err != nil {
				return fmt.Errorf("temporal-server: %w", err)
			}
			if err := s.Start(); err != nil {
				return fmt.Errorf("temporal-server: %w", err)
			}
			fmt.Printf("Temporal server with Switchyard's authorizer (roles %s), services %v\n", roles.Path, services)
			<-cmd.Context().Done()
			return s.Stop()
		},
	}
	cmd.Flags().StringVar(&root, "root", ".", "the server's root directory")
	cmd.Flags().StringVar(&configDir, "config", "config", "its config directory, under --root")
	cmd.Flags().StringVar(&env, "env", "production", "the config's environment (its file name)")
	cmd.Flags().StringVar(&rolesFile, "roles", "", "who may do what to which service in which environment (required)")
	cmd.Flags().StringSliceVar(&services, "service", []string{"frontend", "internal-frontend", "history", "matching", "worker"}, "the services to run")
	_ = cmd.MarkFlagRequired("roles")
	return cmd
}
