package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp"              // the http app and static_response
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy" // reverse_proxy

	"github.com/switchyard/switchyard/internal/rollout"
)

// Caddy drives a Caddy server through its admin API: the service is one HTTP
// server whose only handler is a reverse_proxy over the two slots with the
// weighted_round_robin policy. While no slot is live it answers 503 instead
// (Caddy's policy cannot run with every weight at 0).
type Caddy struct {
	Admin  string // http://127.0.0.1:2019
	Listen string // 127.0.0.1:8080
	ID     string // @id of the handler, and the server's name
	// Blue and Green are the slots' replica addresses (host:port).
	Blue, Green []string
	// Embedded is the Caddy inside this process: it listens on a socket the
	// process holds, so that config changes never close it.
	Embedded bool
}

var caddyClient = &http.Client{Timeout: 10 * time.Second}

func (c *Caddy) call(ctx context.Context, method, path string, body any) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.Admin, "/")+path, rd)
	if err != nil {
		return nil, 0, fmt.Errorf("caddy: %s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := caddyClient.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("caddy: %s %s: %w (is Caddy's admin API listening at %s?)", method, path, err, c.Admin)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotFound {
		return out, resp.StatusCode, fmt.Errorf("caddy: %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(out)))
	}
	return out, resp.StatusCode, nil
}

func (c *Caddy) handler(w rollout.Weights) map[string]any {
	if w.Blue == 0 && w.Green == 0 {
		return map[string]any{
			"@id": c.ID, "handler": "static_response", "status_code": 503,
			"body": "switchyard: no slot is live yet\n",
		}
	}
	return map[string]any{
		"@id": c.ID, "handler": "reverse_proxy",
		"upstreams": c.upstreams(),
		"load_balancing": map[string]any{
			"selection_policy": map[string]any{"policy": "weighted_round_robin", "weights": c.weightList(w)},
			// a request that cannot reach a slot is tried again, on the next pick
			"retries": 2, "try_interval": "20ms",
		},
	}
}

// upstreams are the blue replicas, then the green ones.
func (c *Caddy) upstreams() []map[string]any {
	var ups []map[string]any
	for _, a := range append(append([]string(nil), c.Blue...), c.Green...) {
		ups = append(ups, map[string]any{"dial": a})
	}
	return ups
}

// weightList gives every replica its slot's weight, in upstream order.
func (c *Caddy) weightList(w rollout.Weights) []int {
	var ws []int
	for range c.Blue {
		ws = append(ws, w.Blue)
	}
	for range c.Green {
		ws = append(ws, w.Green)
	}
	return ws
}

func (c *Caddy) server(w rollout.Weights) (map[string]any, error) {
	listen := c.Listen
	if c.Embedded {
		var err error
		embedded.Lock()
		dir := embedded.stateDir
		embedded.Unlock()
		if listen, err = heldSocket(c.ID, c.Listen, dir); err != nil {
			return nil, err
		}
	}
	return map[string]any{
		"listen":          []string{listen},
		"routes":          []map[string]any{{"handle": []any{c.handler(w)}}},
		"automatic_https": map[string]any{"disable": true},
	}, nil
}

// Ensure creates the service's server, answering 503 until a slot is live,
// unless it exists already.
func (c *Caddy) Ensure(ctx context.Context) error {
	_, code, err := c.call(ctx, http.MethodGet, "/id/"+c.ID, nil)
	if err != nil {
		return err
	}
	if code != http.StatusNotFound {
		return nil
	}
	cfg, _, err := c.call(ctx, http.MethodGet, "/config/", nil)
	if err != nil {
		return err
	}
	var full map[string]any
	_ = json.Unmarshal(cfg, &full)
	srv, err := c.server(rollout.Weights{})
	if err != nil {
		return err
	}
	switch {
	case full == nil:
		u, _ := url.Parse(c.Admin)
		_, _, err = c.call(ctx, http.MethodPost, "/load", map[string]any{
			"admin": map[string]any{"listen": u.Host},
			"apps":  map[string]any{"http": httpApp(c.ID, srv)},
		})
	case dig(full, "apps", "http") == nil:
		if dig(full, "apps") == nil {
			_, _, err = c.call(ctx, http.MethodPut, "/config/apps", map[string]any{"http": httpApp(c.ID, srv)})
		} else {
			_, _, err = c.call(ctx, http.MethodPut, "/config/apps/http", httpApp(c.ID, srv))
		}
	case dig(full, "apps", "http", "servers") == nil:
		_, _, err = c.call(ctx, http.MethodPut, "/config/apps/http/servers", map[string]any{c.ID: srv})
	default:
		_, _, err = c.call(ctx, http.MethodPut, "/config/apps/http/servers/"+c.ID, srv)
	}
	return err
}

func httpApp(id string, srv map[string]any) map[string]any {
	// the grace period lets requests in flight finish when a config change
	// replaces the server
	return map[string]any{"grace_period": "10s", "servers": map[string]any{id: srv}}
}

func dig(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

// SetWeights changes only the policy's weights where it can, so Caddy swaps
// the smallest part of its config.
func (c *Caddy) SetWeights(ctx context.Context, w rollout.Weights) error {
	// the route may be gone (a Caddy restarted without its config): recreate it
	if err := c.Ensure(ctx); err != nil {
		return err
	}
	cur, same, err := c.read(ctx)
	if err != nil {
		return err
	}
	if cur == w && same {
		return nil
	}
	liveBefore, liveAfter := cur != (rollout.Weights{}), w != (rollout.Weights{})
	if liveBefore && liveAfter && same {
		_, _, err = c.call(ctx, http.MethodPatch, "/id/"+c.ID+"/load_balancing/selection_policy/weights", c.weightList(w))
	} else {
		_, _, err = c.call(ctx, http.MethodPatch, "/id/"+c.ID, c.handler(w))
	}
	if err != nil {
		return err
	}
	got, err := c.Weights(ctx)
	if err != nil {
		return err
	}
	if got != w {
		return fmt.Errorf("caddy: server %s reports %s after setting %s", c.ID, got, w)
	}
	return nil
}

// Weights reads the policy's weights back from the running config.
func (c *Caddy) Weights(ctx context.Context) (rollout.Weights, error) {
	w, _, err := c.read(ctx)
	return w, err
}

// read returns the slots' weights, each its first upstream's, and whether
// the upstreams are the ones this router would write (the replica count
// may have changed since).
func (c *Caddy) read(ctx context.Context) (rollout.Weights, bool, error) {
	out, code, err := c.call(ctx, http.MethodGet, "/id/"+c.ID, nil)
	if err != nil {
		return rollout.Weights{}, false, err
	}
	if code == http.StatusNotFound {
		return rollout.Weights{}, false, fmt.Errorf("caddy: no handler with @id %s at %s (run a deploy to create it)", c.ID, c.Admin)
	}
	var h struct {
		Handler   string `json:"handler"`
		Upstreams []struct {
			Dial string `json:"dial"`
		} `json:"upstreams"`
		LoadBalancing struct {
			SelectionPolicy struct {
				Weights []int `json:"weights"`
			} `json:"selection_policy"`
		} `json:"load_balancing"`
	}
	if err := json.Unmarshal(out, &h); err != nil {
		return rollout.Weights{}, false, fmt.Errorf("caddy: handler %s: %w", c.ID, err)
	}
	if h.Handler == "static_response" {
		return rollout.Weights{}, false, nil
	}
	ws := h.LoadBalancing.SelectionPolicy.Weights
	if len(ws) != len(h.Upstreams) {
		return rollout.Weights{}, false, fmt.Errorf("caddy: handler %s has %d weights for %d upstreams (was it changed by hand?)", c.ID, len(ws), len(h.Upstreams))
	}
	var w rollout.Weights
	seen := map[rollout.Slot]bool{}
	var dials []string
	for i, u := range h.Upstreams {
		dials = append(dials, u.Dial)
		for _, slot := range []rollout.Slot{rollout.Blue, rollout.Green} {
			addrs := c.Blue
			if slot == rollout.Green {
				addrs = c.Green
			}
			if !seen[slot] && slices.Contains(addrs, u.Dial) {
				seen[slot] = true
				if slot == rollout.Blue {
					w.Blue = ws[i]
				} else {
					w.Green = ws[i]
				}
			}
		}
	}
	if !seen[rollout.Blue] && !seen[rollout.Green] {
		return rollout.Weights{}, false, fmt.Errorf("caddy: handler %s proxies to %v, none of them a slot of this service (was it changed by hand?)", c.ID, dials)
	}
	same := slices.Equal(dials, append(append([]string(nil), c.Blue...), c.Green...))
	return w, same, nil
}

// Counters: Caddy keeps no per-upstream error counters.
func (c *Caddy) Counters(context.Context) (map[rollout.Slot]rollout.Counters, error) {
	return nil, ErrNoCounters
}

var embedded struct {
	sync.Mutex
	admin    string
	stateDir string
}

// Every Caddy config change starts a new server that opens a new
// SO_REUSEPORT socket and closes the old one; Linux resets the connections
// still queued on the closed socket, so a weight change under load could
// fail a request now and then (measured: 1 in ~5,700 over 120 changes). The
// embedded Caddy instead listens on "fd/N", a socket this process opens once
// and holds: each new server dups it, and closing a dup closes nothing.
var held struct {
	sync.Mutex
	byAddr map[string]*os.File
}

// heldSocket returns "fd/N" for a socket on addr held by this process,
// opening it on first use and recording addr for the server name, so a
// restarted process can open it again for the saved config.
func heldSocket(name, addr, dir string) (string, error) {
	held.Lock()
	defer held.Unlock()
	if f, ok := held.byAddr[addr]; ok {
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
	if held.byAddr == nil {
		held.byAddr = map[string]*os.File{}
	}
	held.byAddr[addr] = f
	if dir != "" {
		names := map[string]string{}
		path := filepath.Join(dir, "listeners.json")
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
func reopenHeld(saved []byte, stateDir string) ([]byte, error) {
	var cfg map[string]any
	if err := json.Unmarshal(saved, &cfg); err != nil {
		return nil, err
	}
	names := map[string]string{}
	if b, err := os.ReadFile(filepath.Join(stateDir, "listeners.json")); err == nil {
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
				fd, err := heldSocket(name, addr, stateDir)
				if err != nil {
					return nil, err
				}
				ls[i] = fd
			}
		}
	}
	return json.Marshal(cfg)
}

// StartEmbedded runs Caddy inside this process with its admin API at admin
// (http://host:port), resuming the config it last saved in stateDir, unless
// something already answers there. It is what router kind "embedded" uses,
// so a demo needs nothing but Go.
func StartEmbedded(ctx context.Context, admin, stateDir string) error {
	embedded.Lock()
	defer embedded.Unlock()
	if embedded.admin == admin {
		return nil
	}
	if embedded.admin != "" {
		return fmt.Errorf("caddy: this worker's embedded router already runs with admin %s; give every spec with router kind embedded that router.caddy.admin (got %s)", embedded.admin, admin)
	}
	c := &Caddy{Admin: admin}
	if _, _, err := c.call(ctx, http.MethodGet, "/config/", nil); err == nil {
		return nil // a Caddy is there already
	}
	u, err := url.Parse(admin)
	if err != nil || u.Host == "" {
		return fmt.Errorf("caddy: admin address %q: want http://host:port", admin)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("caddy: state dir: %w", err)
	}
	caddy.ConfigAutosavePath = filepath.Join(stateDir, "caddy-autosave.json")
	embedded.stateDir = stateDir
	cfg := embeddedConfig(u.Host)
	if saved, err := os.ReadFile(caddy.ConfigAutosavePath); err == nil && len(saved) > 0 {
		if re, err := reopenHeld(saved, stateDir); err == nil {
			cfg = re
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("caddy: read saved config: %w", err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		if err2 := caddy.Load(embeddedConfig(u.Host), true); err2 != nil {
			return fmt.Errorf("caddy: start embedded router: %w", err2)
		}
	}
	embedded.admin = admin
	return nil
}

// ResumeEmbedded restarts the embedded Caddy from the config it saved in
// stateDir, if there is one, so a restarted `switchyard dev` serves again at
// once rather than at the next activity.
func ResumeEmbedded(ctx context.Context, stateDir string) error {
	saved, err := os.ReadFile(filepath.Join(stateDir, "caddy-autosave.json"))
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
	return StartEmbedded(ctx, "http://"+cfg.Admin.Listen, stateDir)
}

// embeddedConfig is a fresh embedded Caddy: only its admin API. Its own log
// is kept to errors: the rollout's story is in Temporal.
func embeddedConfig(adminHost string) []byte {
	return []byte(fmt.Sprintf(`{"admin":{"listen":%q},"logging":{"logs":{"default":{"level":"ERROR","exclude":["admin.api"]}}}}`, adminHost))
}

// StopEmbedded stops the embedded Caddy, if this process runs one.
func StopEmbedded() {
	embedded.Lock()
	defer embedded.Unlock()
	if embedded.admin != "" {
		_ = caddy.Stop()
		embedded.admin = ""
	}
}
