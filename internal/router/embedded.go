package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
)

// Embedded is the Caddy run inside a worker for router kind "embedded", so a
// demo needs nothing but Go. The worker owns it and hands it to the
// activities; it starts on first use and resumes from the config it saved.
// Caddy's running config is process-wide: one Embedded per process.
type Embedded struct {
	stateDir string

	mu    sync.Mutex
	admin string // the admin API it runs with, once started
	// held are the service listeners, by address (see socket).
	held map[string]*os.File
}

// NewEmbedded returns an embedded router that keeps its config in stateDir.
func NewEmbedded(stateDir string) *Embedded { return &Embedded{stateDir: stateDir} }

// Every Caddy config change starts a new server that opens a new
// SO_REUSEPORT socket and closes the old one; Linux resets the connections
// still queued on the closed socket, so a weight change under load could
// fail a request now and then (measured: 1 in ~5,700 over 120 changes). The
// embedded Caddy instead listens on "fd/N", a socket this process opens once
// and holds: each new server dups it, and closing a dup closes nothing.

// socket returns "fd/N" for a socket on addr held by this process, opening
// it on first use and recording addr for the server name, so a restarted
// process can open it again for the saved config.
func (e *Embedded) socket(name, addr string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.socketLocked(name, addr)
}

func (e *Embedded) socketLocked(name, addr string) (string, error) {
	if f, ok := e.held[addr]; ok {
		return fmt.Sprintf("fd/%d", f.Fd()), nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("caddy: listen %s: %w", addr, err)
	}
	f, err := l.(*net.TCPListener).File()
	l.Close() // the dup in f keeps the socket open
	if err != nil {
		return "", fmt.Errorf("caddy: listen %s: %w", addr, err)
	}
	if e.held == nil {
		e.held = map[string]*os.File{}
	}
	e.held[addr] = f
	if e.stateDir != "" {
		names := map[string]string{}
		path := filepath.Join(e.stateDir, "listeners.json")
		if b, err := os.ReadFile(path); err == nil {
			_ = json.Unmarshal(b, &names)
		}
		names[name] = addr
		b, _ := json.Marshal(names)
		_ = os.WriteFile(path, b, 0o600)
	}
	return fmt.Sprintf("fd/%d", f.Fd()), nil
}

// reopenHeld rewrites a saved config's "fd/N" listeners, which meant
// something only to the process that saved it, to sockets held by this one.
func (e *Embedded) reopenHeld(saved []byte) ([]byte, error) {
	var cfg map[string]any
	if err := json.Unmarshal(saved, &cfg); err != nil {
		return nil, err
	}
	names := map[string]string{}
	if b, err := os.ReadFile(filepath.Join(e.stateDir, "listeners.json")); err == nil {
		_ = json.Unmarshal(b, &names)
	}
	servers, _ := dig(cfg, "apps", "http", "servers").(map[string]any)
	for name, v := range servers {
		srv, _ := v.(map[string]any)
		ls, _ := srv["listen"].([]any)
		for i, l := range ls {
			if s, _ := l.(string); strings.HasPrefix(s, "fd/") {
				addr, ok := names[name]
				if !ok {
					return nil, fmt.Errorf("caddy: no address recorded for server %s", name)
				}
				fd, err := e.socketLocked(name, addr)
				if err != nil {
					return nil, err
				}
				ls[i] = fd
			}
		}
	}
	return json.Marshal(cfg)
}

// Start runs Caddy in this process with its admin API at admin
// (http://host:port), resuming the config it last saved, unless something
// already answers there. Starting it again with the same admin is a no-op.
func (e *Embedded) Start(ctx context.Context, admin string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.admin == admin {
		return nil
	}
	if e.admin != "" {
		return fmt.Errorf("caddy: this worker's embedded router already runs with admin %s; give every spec with router kind embedded that router.caddy.admin (got %s)", e.admin, admin)
	}
	c := &Caddy{Admin: admin}
	if _, _, err := c.call(ctx, http.MethodGet, "/config/", nil); err == nil {
		return nil // a Caddy is there already
	}
	listen := AdminListen(admin)
	if listen == "" {
		return fmt.Errorf("caddy: admin address %q: want unix:/path/to/admin.sock or http://127.0.0.1:port", admin)
	}
	if err := os.MkdirAll(e.stateDir, 0o700); err != nil {
		return fmt.Errorf("caddy: state dir: %w", err)
	}
	caddy.ConfigAutosavePath = filepath.Join(e.stateDir, "caddy-autosave.json")
	cfg := embeddedConfig(listen)
	if saved, err := os.ReadFile(caddy.ConfigAutosavePath); err == nil && len(saved) > 0 {
		if re, err := e.reopenHeld(saved); err == nil {
			cfg = re
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("caddy: read saved config: %w", err)
	}
	e.loadLive()
	liveOwner.Store(e)
	if err := caddy.Load(cfg, true); err != nil {
		if err2 := caddy.Load(embeddedConfig(listen), true); err2 != nil {
			return fmt.Errorf("caddy: start embedded router: %w", err2)
		}
	}
	e.admin = admin
	return nil
}

// Resume restarts the embedded Caddy from the config it saved, if there is
// one, so a restarted worker serves again at once rather than at the next
// activity.
func (e *Embedded) Resume(ctx context.Context) error {
	saved, err := os.ReadFile(filepath.Join(e.stateDir, "caddy-autosave.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("caddy: read saved config: %w", err)
	}
	var cfg struct {
		Admin struct {
			Listen string `json:"listen"`
		} `json:"admin"`
	}
	if err := json.Unmarshal(saved, &cfg); err != nil || cfg.Admin.Listen == "" {
		// a process killed while Caddy rewrote the file leaves it cut short:
		// the next activity starts the router afresh and rebuilds its route
		return nil
	}
	if path, ok := strings.CutPrefix(cfg.Admin.Listen, "unix/"); ok {
		return e.Start(ctx, "unix:"+path)
	}
	return e.Start(ctx, "http://"+cfg.Admin.Listen)
}

// embeddedConfig is a fresh embedded Caddy: only its admin API. Its own log
// is kept to errors: the rollout's story is in Temporal.
func embeddedConfig(adminHost string) []byte {
	return []byte(fmt.Sprintf(`{"admin":{"listen":%q},"logging":{"logs":{"default":{"level":"ERROR","exclude":["admin.api"]}}}}`, adminHost))
}

// Stop stops the embedded Caddy if this value started it, and closes the
// sockets it held.
func (e *Embedded) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.admin != "" {
		_ = caddy.Stop()
		e.admin = ""
		liveOwner.CompareAndSwap(e, nil)
	}
	for addr, f := range e.held {
		f.Close()
		delete(e.held, addr)
	}
}
