package router

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/switchyard/switchyard/internal/rollout"
)

// Every Caddy config change replaces the HTTP server, and Go's server drops,
// unanswered, a request it reads after its shutdown began: a client on a new
// connection that the old server had just accepted gets EOF (measured by the
// soak: 16 of 8,078 new-connection requests over 150 weight changes). The
// embedded Caddy therefore changes weights without a config change: its
// reverse_proxy picks upstreams with this policy, whose weights live in
// the process and are set in place. The config keeps the weights it was
// loaded with; the worker's own file (weights.json) keeps the live ones
// for a restart. They are read and set through Caddy's admin API
// (/switchyard/weights/KEY), like the rest of its config, so any process
// that can reach the admin API sees the weights that serve.

func init() {
	caddy.RegisterModule(LiveWeights{})
	caddy.RegisterModule(liveAdmin{})
}

// liveOwner is the Embedded whose Caddy runs in this process: it keeps the
// weights.json the admin route writes.
var liveOwner atomic.Pointer[Embedded]

// LiveWeights is the selection policy "switchyard_live": smooth weighted
// round robin over the upstreams, with weights looked up by Key.
type LiveWeights struct {
	Key string `json:"key"`
	// Weights are the ones the config was written with; they apply only
	// until the process has live ones for Key.
	Weights []int `json:"weights,omitempty"`
	// Blue is how many of the upstreams (the first ones) are blue's: the
	// routes pick a slot, then one of its replicas.
	Blue int `json:"blue,omitempty"`
	live *liveEntry
}

type liveEntry struct {
	mu      sync.Mutex
	weights []int
	current []int
	// routes send requests to a slot besides the weights (targeting)
	routes rollout.Routes
	next   int // round robin among a routed slot's replicas
}

var liveTable sync.Map // key → *liveEntry

// routed holds the keys a loaded route uses: the admin route sets weights
// only for those, so it cannot be made to grow the table (or weights.json)
// with keys nothing serves.
var routed sync.Map // key → struct{}

func liveFor(key string) *liveEntry {
	e, _ := liveTable.LoadOrStore(key, &liveEntry{})
	return e.(*liveEntry)
}

// setLive sets key's weights, in upstream order.
func setLive(key string, weights []int) {
	e := liveFor(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.weights, e.current = append([]int(nil), weights...), make([]int, len(weights))
}

// getLive returns key's live weights, nil if there are none.
func getLive(key string) []int {
	v, ok := liveTable.Load(key)
	if !ok {
		return nil
	}
	e := v.(*liveEntry)
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]int(nil), e.weights...)
}

// CaddyModule registers the policy.
func (LiveWeights) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.selection_policies.switchyard_live",
		New: func() caddy.Module { return new(LiveWeights) },
	}
}

// Provision adopts the config's weights unless the process has live ones.
func (p *LiveWeights) Provision(caddy.Context) error {
	routed.Store(p.Key, struct{}{})
	p.live = liveFor(p.Key)
	p.live.mu.Lock()
	defer p.live.mu.Unlock()
	if p.live.weights == nil {
		p.live.weights, p.live.current = append([]int(nil), p.Weights...), make([]int, len(p.Weights))
	}
	return nil
}

// Select picks the upstream for a request: the routes' slot for a request
// they route (a match, the test route, a sticky client's version), else
// the available upstream that smooth weighted round robin (nginx's) puts
// next: the slots interleave in proportion to their weights.
func (p *LiveWeights) Select(pool reverseproxy.UpstreamPool, req *http.Request, w http.ResponseWriter) *reverseproxy.Upstream {
	e := p.live
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.weights) != len(pool) {
		return nil
	}
	if r := e.routes; !r.Empty() && p.Blue > 0 && req != nil {
		if r.Matches(req) {
			return e.pick(pool, r.Target, p.Blue)
		}
		if r.Sticky() {
			b, fresh := r.Bucket(req, func() int { return rand.IntN(100) })
			slot := r.Target.Other()
			if b < e.share(r.Target, p.Blue) {
				slot = r.Target
			}
			if u := e.pick(pool, slot, p.Blue); u != nil {
				if fresh && w != nil {
					http.SetCookie(w, r.StickyCookieFor(b))
				}
				return u
			}
		}
	}
	total, best := 0, -1
	for i, u := range pool {
		if e.weights[i] <= 0 || !u.Available() {
			continue
		}
		e.current[i] += e.weights[i]
		total += e.weights[i]
		if best < 0 || e.current[i] > e.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	e.current[best] -= total
	return pool[best]
}

// share is a slot's percentage of the weights (the weights are divided by
// their greatest common divisor: the ratio is the share).
func (e *liveEntry) share(slot rollout.Slot, blue int) int {
	total, mine := 0, 0
	for i, w := range e.weights {
		total += w
		if (i < blue) == (slot == rollout.Blue) {
			mine += w
		}
	}
	if total == 0 {
		return 0
	}
	return mine * 100 / total
}

// pick is the slot's next available replica, whatever its weight.
func (e *liveEntry) pick(pool reverseproxy.UpstreamPool, slot rollout.Slot, blue int) *reverseproxy.Upstream {
	lo, hi := 0, blue
	if slot == rollout.Green {
		lo, hi = blue, len(pool)
	}
	for n := range hi - lo {
		i := lo + (e.next+n)%(hi-lo)
		if pool[i].Available() {
			e.next++
			return pool[i]
		}
	}
	return nil
}

// setRoutes sets key's routes; getRoutes reads them.
func setRoutes(key string, r rollout.Routes) {
	e := liveFor(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.routes = r
}

func getRoutes(key string) rollout.Routes {
	e := liveFor(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.routes
}

// saveLive records key's live weights in the state dir, for a restart.
func (e *Embedded) saveLive(key string, weights []int) error {
	return saveKeyed(e, "weights.json", key, weights)
}

// saveRoutes records key's routes in the state dir, for a restart.
func (e *Embedded) saveRoutes(key string, r rollout.Routes) error {
	return saveKeyed(e, "routes.json", key, r)
}

// saveKeyed sets key in a JSON object file of the state dir.
func saveKeyed[T any](e *Embedded, file, key string, v T) error {
	if e.stateDir == "" {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	path := filepath.Join(e.stateDir, file)
	all := map[string]T{}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &all)
	}
	all[key] = v
	b, _ := json.Marshal(all)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loadLive gives the process the live weights a previous one saved, before
// the saved config starts serving.
func (e *Embedded) loadLive() {
	b, err := os.ReadFile(filepath.Join(e.stateDir, "weights.json"))
	if err != nil {
		return
	}
	all := map[string][]int{}
	if json.Unmarshal(b, &all) != nil {
		return
	}
	for k, w := range all {
		if getLive(k) == nil {
			setLive(k, w)
		}
	}
	routes := map[string]rollout.Routes{}
	if b, err := os.ReadFile(filepath.Join(e.stateDir, "routes.json")); err == nil && json.Unmarshal(b, &routes) == nil {
		for k, r := range routes {
			setRoutes(k, r)
		}
	}
}

// KeepLiveIn keeps the live weights and routes in dir, for a Caddy of its
// own built with Switchyard's modules (cmd/caddy): they survive its restart
// as the embedded router's do, loaded here before its config serves.
func KeepLiveIn(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("switchyard state dir: %w", err)
	}
	e := &Embedded{stateDir: dir}
	e.loadLive()
	liveOwner.Store(e)
	return nil
}

// liveAdmin serves /switchyard/weights/KEY on the admin API: GET the live
// weights (404: none), PUT a JSON list to set them in place.
type liveAdmin struct{}

func (liveAdmin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.switchyard_weights", New: func() caddy.Module { return liveAdmin{} }}
}

func (liveAdmin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/switchyard/weights/", Handler: caddy.AdminHandlerFunc(serveLive)},
		{Pattern: "/switchyard/routes/", Handler: caddy.AdminHandlerFunc(serveRoutes)},
		{Pattern: "/switchyard/mirror/", Handler: caddy.AdminHandlerFunc(serveMirror)},
	}
}

// serveRoutes serves /switchyard/routes/KEY: GET the routes in force, PUT
// them (an empty object: by weight only). Saved beside the weights.
func serveRoutes(w http.ResponseWriter, r *http.Request) error {
	key := strings.TrimPrefix(r.URL.Path, "/switchyard/routes/")
	if _, ok := routed.Load(key); !ok {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no route uses key %q: load its route first", key)}
	}
	switch r.Method {
	case http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(getRoutes(key))
	case http.MethodPut:
		var rt rollout.Routes
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err := json.Unmarshal(b, &rt); err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("want the routes as JSON: %v", err)}
		}
		if e := liveOwner.Load(); e != nil {
			if err := e.saveRoutes(key, rt); err != nil {
				return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("save routes: %w", err)}
			}
		}
		setRoutes(key, rt)
		return nil
	}
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("%s: use GET or PUT", r.Method)}
}

func serveLive(w http.ResponseWriter, r *http.Request) error {
	key := strings.TrimPrefix(r.URL.Path, "/switchyard/weights/")
	switch r.Method {
	case http.MethodGet:
		ws := getLive(key)
		if ws == nil {
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no live weights for %q", key)}
		}
		w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w).Encode(ws)
	case http.MethodPut:
		if _, ok := routed.Load(key); !ok {
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no route uses weights %q: load its route first", key)}
		}
		var ws []int
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err := json.Unmarshal(b, &ws); err != nil || len(ws) == 0 {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("want a JSON list of weights: %v", err)}
		}
		// saved first: a crash between the two leaves the file ahead, and
		// the next Shift writes both again
		if e := liveOwner.Load(); e != nil {
			if err := e.saveLive(key, ws); err != nil {
				return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("save live weights: %w", err)}
			}
		}
		setLive(key, ws)
		return nil
	}
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("%s: use GET or PUT", r.Method)}
}

var (
	_ reverseproxy.Selector = (*LiveWeights)(nil)
	_ caddy.Provisioner     = (*LiveWeights)(nil)
)
