// Command caddy is Caddy with Switchyard's modules built in: the
// switchyard_live selection policy (weights set in place; header, cookie,
// sticky and test routes) and the switchyard_mirror handler (shadow traffic
// compared with the live answers). Run it as your own Caddy and point a
// spec at it with router kind caddy and switchyardModules: true.
//
//	go build -o caddy ./cmd/caddy
//	./caddy run --config caddy.json
//
// The live weights and routes are kept in Caddy's data directory
// (switchyard/ under it, or $SWITCHYARD_CADDY_STATE), so a restarted Caddy
// serves what it served before, not the weights its config was loaded with.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// the HTTP modules a front proxy uses; Caddy's standard set would pull
	// in templates, markdown and a file browser that a router never runs
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/encode"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/encode/gzip"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/encode/zstd"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/requestbody"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/rewrite"
	_ "github.com/caddyserver/caddy/v2/modules/caddytls"
	_ "github.com/caddyserver/caddy/v2/modules/logging"

	"github.com/switchyard/switchyard/internal/router"
)

func main() {
	dir := os.Getenv("SWITCHYARD_CADDY_STATE")
	if dir == "" {
		dir = filepath.Join(caddy.AppDataDir(), "switchyard")
	}
	if err := router.KeepLiveIn(dir); err != nil {
		fmt.Fprintln(os.Stderr, "caddy:", err)
		os.Exit(1)
	}
	caddycmd.Main()
}
