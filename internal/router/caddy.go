package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

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
	// Held is the worker's embedded Caddy when this is router kind
	// embedded: the service listens on a socket it holds, so that config
	// changes never close it. Nil for a Caddy of its own.
	Held *Embedded
	// embedded: router kind embedded, which needs Held to write a listener.
	embedded bool
	// modules: the Caddy has Switchyard's modules (embedded, or a Caddy of
	// its own built with cmd/caddy): weights in place, routes, mirroring.
	modules bool
}

var caddyClient = &http.Client{Timeout: 10 * time.Second}

// AdminListen is the admin address as Caddy's config writes it:
// "unix:/run/x.sock" (Switchyard's form) is Caddy's "unix//run/x.sock".
func AdminListen(admin string) string {
	if path, ok := strings.CutPrefix(admin, "unix:"); ok {
		return "unix/" + path
	}
	u, _ := url.Parse(admin)
	if u == nil {
		return ""
	}
	return u.Host
}

// adminRequest builds a request to the admin API, over its unix socket
// when it has one: no other user on the machine can reach that (Caddy
// makes it 0200), where anyone local can reach a TCP port.
func (c *Caddy) adminRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, *http.Client, error) {
	sock, unix := strings.CutPrefix(c.Admin, "unix:")
	if !unix {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.Admin, "/")+path, body)
		return req, caddyClient, err
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://localhost"+path, body)
	cl := &http.Client{Timeout: caddyClient.Timeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	return req, cl, err
}

func (c *Caddy) call(ctx context.Context, method, path string, body any) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, cl, err := c.adminRequest(ctx, method, path, rd)
	if err != nil {
		return nil, 0, fmt.Errorf("caddy: %s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.Do(req)
	if cl != caddyClient {
		defer cl.CloseIdleConnections()
	}
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
	policy := map[string]any{"policy": "weighted_round_robin", "weights": c.weightList(w)}
	if c.modules {
		policy = map[string]any{"policy": "switchyard_live", "key": c.ID, "weights": c.weightList(w), "blue": len(c.Blue)}
	}
	return map[string]any{
		"@id": c.ID, "handler": "reverse_proxy",
		"upstreams": c.upstreams(),
		"load_balancing": map[string]any{
			"selection_policy": policy,
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
//
// Caddy's weighted_round_robin serves the weights as runs: with 75 and 25
// it sends 75 requests in a row to blue, then 25 to green, so a short bake
// at 25 % could see green get nothing (measured: 1 request in 60). The
// weights go over divided by their greatest common divisor (3 and 1: one
// green in every four), which keeps the share and interleaves the slots;
// Weights turns them back into percentages.
func (c *Caddy) weightList(w rollout.Weights) []int {
	d := gcd(w.Blue, w.Green)
	if d == 0 {
		d = 1
	}
	var ws []int
	for range c.Blue {
		ws = append(ws, w.Blue/d)
	}
	for range c.Green {
		ws = append(ws, w.Green/d)
	}
	return ws
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (c *Caddy) server(w rollout.Weights) (map[string]any, error) {
	listen := c.Listen
	if c.embedded {
		if c.Held == nil {
			return nil, errors.New("caddy: router kind embedded needs the worker's embedded router, and this process runs none")
		}
		var err error
		if listen, err = c.Held.socket(c.ID, c.Listen); err != nil {
			return nil, err
		}
	}
	handle := []any{c.handler(w)}
	if c.modules {
		// shadow traffic, off until the routes ask for it (mirror.go)
		handle = append([]any{c.mirrorHandler()}, handle...)
	}
	return map[string]any{
		"listen":          []string{listen},
		"routes":          []map[string]any{{"handle": handle}},
		"automatic_https": map[string]any{"disable": true},
	}, nil
}

func (c *Caddy) mirrorHandler() map[string]any {
	return map[string]any{"@id": c.ID + "-mirror", "handler": "switchyard_mirror", "key": c.ID, "blue": c.Blue, "green": c.Green}
}

// Ensure creates the service's server, answering 503 until a slot is live,
// unless it exists already.
func (c *Caddy) Ensure(ctx context.Context) (err error) {
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
	defer func() {
		if err != nil && c.modules && !c.embedded && strings.Contains(err.Error(), "switchyard_") {
			err = fmt.Errorf("%w (router.caddy.switchyardModules is true but the Caddy at %s lacks Switchyard's modules: build it with go build -o caddy ./cmd/caddy)", err, c.Admin)
		}
	}()
	switch {
	case full == nil:
		_, _, err = c.call(ctx, http.MethodPost, "/load", map[string]any{
			"admin": map[string]any{"listen": AdminListen(c.Admin)},
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
	if c.modules && liveAfter {
		// in place, and before any config change, which then keeps them (liveweights.go)
		if _, _, err := c.call(ctx, http.MethodPut, "/switchyard/weights/"+c.ID, c.weightList(w)); err != nil {
			return err
		}
	}
	switch {
	case liveBefore && liveAfter && same && c.modules:
	case liveBefore && liveAfter && same:
		_, _, err = c.call(ctx, http.MethodPatch, "/id/"+c.ID+"/load_balancing/selection_policy/weights", c.weightList(w))
	default:
		_, _, err = c.call(ctx, http.MethodPatch, "/id/"+c.ID, c.handler(w))
	}
	return err
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
				Policy  string `json:"policy"`
				Weights []int  `json:"weights"`
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
	live := h.LoadBalancing.SelectionPolicy.Policy == "switchyard_live"
	if live {
		out, code, err := c.call(ctx, http.MethodGet, "/switchyard/weights/"+c.ID, nil)
		if err != nil {
			return rollout.Weights{}, false, err
		}
		if code == http.StatusOK {
			ws = nil
			if err := json.Unmarshal(out, &ws); err != nil {
				return rollout.Weights{}, false, fmt.Errorf("caddy: live weights of %s: %w", c.ID, err)
			}
		}
	}
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
	// back to percentages (the weights went over divided by their gcd)
	if sum := w.Blue + w.Green; sum > 0 && sum != 100 {
		w.Blue = w.Blue * 100 / sum
		w.Green = 100 - w.Blue
	}
	// an embedded handler written before the live policy is rewritten with it
	same := slices.Equal(dials, append(append([]string(nil), c.Blue...), c.Green...)) && live == c.modules
	return w, same, nil
}

// SetRoutes puts routes in force in place where the Caddy has Switchyard's
// modules (its selection policy routes by request, liveweights.go); a Caddy
// with only its own gets matching routes in its config (setConfigRoutes).
func (c *Caddy) SetRoutes(ctx context.Context, r rollout.Routes) error {
	if err := c.Ensure(ctx); err != nil {
		return err
	}
	if !c.modules {
		return c.setConfigRoutes(ctx, r)
	}
	if r.MirrorShare > 0 {
		// a server written before the mirror handler existed gets it now
		if _, code, err := c.call(ctx, http.MethodGet, "/id/"+c.ID+"-mirror", nil); err != nil {
			return err
		} else if code == http.StatusNotFound {
			if err := c.addMirror(ctx); err != nil {
				return err
			}
		}
	}
	_, code, err := c.call(ctx, http.MethodPut, "/switchyard/routes/"+c.ID, r)
	if err == nil && code == http.StatusNotFound {
		return fmt.Errorf("caddy: %s serves no slot yet: routes apply once one is live", c.ID)
	}
	return err
}

// Routes reads the routes in force (by weight only where none were set).
func (c *Caddy) Routes(ctx context.Context) (rollout.Routes, error) {
	var r rollout.Routes
	if !c.modules {
		return c.configRoutes(ctx)
	}
	out, code, err := c.call(ctx, http.MethodGet, "/switchyard/routes/"+c.ID, nil)
	if err != nil || code == http.StatusNotFound {
		return r, err
	}
	return r, json.Unmarshal(out, &r)
}

// A Caddy with its own modules only: header, cookie and test routes are
// routes of the service's server before its weighted one, each matching
// (Caddy's header matcher; an expression on the cookie placeholders) and
// proxying to the target's replicas. Stickiness and mirroring need
// Switchyard's modules.

func (c *Caddy) setConfigRoutes(ctx context.Context, rt rollout.Routes) error {
	if rt.Sticky() || rt.MirrorShare > 0 {
		return &rollout.PermanentError{Err: errors.New("caddy: sticky canaries and mirroring need Switchyard's modules (router kind embedded, or a Caddy built with cmd/caddy and switchyardModules: true)")}
	}
	path := "/config/apps/http/servers/" + c.ID + "/routes"
	out, _, err := c.call(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	var routes []map[string]any
	if err := json.Unmarshal(out, &routes); err != nil {
		return fmt.Errorf("caddy: routes of %s: %w", c.ID, err)
	}
	var main map[string]any
	for _, r := range routes {
		if r["match"] == nil {
			main = r
		}
	}
	if main == nil {
		return fmt.Errorf("caddy: server %s has no route without a matcher (was it changed by hand?)", c.ID)
	}
	var next []map[string]any
	if !rt.Empty() {
		var ups []map[string]any
		for _, a := range c.addrs(rt.Target) {
			ups = append(ups, map[string]any{"dial": a})
		}
		to := []any{map[string]any{"handler": "reverse_proxy", "upstreams": ups}}
		add := func(m map[string]any) { next = append(next, map[string]any{"match": []any{m}, "handle": to}) }
		if len(rt.Header) > 0 {
			hs := map[string][]string{}
			for k, v := range rt.Header {
				hs[k] = []string{v}
			}
			add(map[string]any{"header": hs})
		}
		if len(rt.Cookie) > 0 {
			var conds []string
			for _, k := range slices.Sorted(maps.Keys(rt.Cookie)) {
				conds = append(conds, fmt.Sprintf("{http.request.cookie.%s} == %q", k, rt.Cookie[k]))
			}
			add(map[string]any{"expression": strings.Join(conds, " && ")})
		}
		if rt.TestHeader != "" {
			add(map[string]any{"header": map[string][]string{rt.TestHeader: {rt.TestValue}}})
		}
	}
	_, _, err = c.call(ctx, http.MethodPatch, path, append(next, main))
	return err
}

func (c *Caddy) addrs(slot rollout.Slot) []string {
	if slot == rollout.Green {
		return c.Green
	}
	return c.Blue
}

// configRoutes reads the target of the matching routes.
func (c *Caddy) configRoutes(ctx context.Context) (rollout.Routes, error) {
	var rt rollout.Routes
	out, _, err := c.call(ctx, http.MethodGet, "/config/apps/http/servers/"+c.ID+"/routes", nil)
	if err != nil {
		return rt, err
	}
	var routes []struct {
		Match  []map[string]any `json:"match"`
		Handle []struct {
			Upstreams []struct {
				Dial string `json:"dial"`
			} `json:"upstreams"`
		} `json:"handle"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return rt, fmt.Errorf("caddy: routes of %s: %w", c.ID, err)
	}
	for _, r := range routes {
		if len(r.Match) == 0 || len(r.Handle) == 0 || len(r.Handle[0].Upstreams) == 0 {
			continue
		}
		rt.Target = rollout.Blue
		if slices.Contains(c.Green, r.Handle[0].Upstreams[0].Dial) {
			rt.Target = rollout.Green
		}
		if hs, ok := r.Match[0]["header"].(map[string]any); ok {
			for k, v := range hs {
				if vs, ok := v.([]any); ok && len(vs) == 1 {
					if rt.Header == nil {
						rt.Header = map[string]string{}
					}
					rt.Header[k], _ = vs[0].(string)
				}
			}
		}
	}
	return rt, nil
}

// addMirror puts the mirror handler first in the service's route.
func (c *Caddy) addMirror(ctx context.Context) error {
	_, _, err := c.call(ctx, http.MethodPut, "/config/apps/http/servers/"+c.ID+"/routes/0/handle/0", c.mirrorHandler())
	return err
}

// Mirrored reads the embedded router's mirror counts for the service.
func (c *Caddy) Mirrored(ctx context.Context) (rollout.MirrorCounters, error) {
	var m rollout.MirrorCounters
	if !c.modules {
		return m, &rollout.PermanentError{Err: errors.New("caddy: mirroring needs Switchyard's modules (router kind embedded, or a Caddy built with cmd/caddy and switchyardModules: true)")}
	}
	out, _, err := c.call(ctx, http.MethodGet, "/switchyard/mirror/"+c.ID, nil)
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(out, &m)
}

var _ Targeter = (*Caddy)(nil)

// Counters: Caddy keeps no per-upstream error counters.
func (c *Caddy) Counters(context.Context) (map[rollout.Slot]rollout.Counters, error) {
	return nil, ErrNoCounters
}
