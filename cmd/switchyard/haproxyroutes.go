package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/internal/router"
	"github.com/switchyard/switchyard/internal/spec"
)

// haproxyRoutesCmd prints the rules an HAProxy backend needs for the
// spec's header, cookie and test routes.
func haproxyRoutesCmd() *cobra.Command {
	var t target
	cmd := &cobra.Command{
		Use:   "haproxy-routes SERVICE",
		Short: "Print the HAProxy backend rules for the spec's header, cookie and test routes",
		Long: `Prints the lines to add to the service's HAProxy backend (before its
servers) for rollout.match and checks.testRoute: they send a matching request
to the slot the map file router.haproxy.map names, which Switchyard changes
through the runtime API during a rollout, without a reload. Create the map
file empty; HAProxy loads it at start.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := loadSpec(args[0], &t)
			if err != nil {
				return err
			}
			if svc.Router.Kind != spec.RouterHAProxy || svc.Router.HAProxy.Map == "" {
				return withCode(exitBadInput, errors.New("the spec's router is not haproxy with router.haproxy.map: nothing to print"))
			}
			if svc.Rollout.Match == nil && svc.Checks.TestRoute == nil && svc.Rollout.Sticky == nil {
				return withCode(exitBadInput, errors.New("the spec has no rollout.match, rollout.sticky or checks.testRoute: nothing to route"))
			}
			fmt.Print(router.HAProxyRoutes(svc))
			return nil
		},
	}
	t.flags(cmd, true)
	return cmd
}
