//go:build noserver

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// A build with -tags noserver (make build-worker, the images) leaves out the
// embedded Temporal server and its Web UI, two thirds of the binary: it runs
// the worker, the dashboard and the CLI against a Temporal server elsewhere.

var errNoServer = errors.New("this switchyard was built without the embedded Temporal server (-tags noserver, for images): use the full build (make build) for dev, demo and temporal-server")

func devCmd(*conn) *cobra.Command { return absent("dev") }

func demoCmd() *cobra.Command { return absent("demo") }

func temporalServerCmd() *cobra.Command { return absent("temporal-server") }

func absent(name string) *cobra.Command {
	return &cobra.Command{Use: name, Hidden: true, DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error { return withCode(exitBadInput, errNoServer) }}
}
