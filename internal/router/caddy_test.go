package router

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/internal/rollout"
)

// standInCaddyAdmin keeps a JSON config and answers the admin API calls the
// router makes (/load, /config/..., /id/...) the way Caddy does, so the
// router's requests and its reading of the answers are checked in
// milliseconds. The end-to-end tests run the real (embedded) Caddy.
type standInCaddyAdmin struct {
	mu      sync.Mutex
	holder  map[string]any // {"root": the config}, so every value has a parent
	changes []string       // method and path of every write
	// stock: a Caddy without Switchyard's modules, whose /load refuses
	// a config naming them as Caddy does
	stock bool
}

func startStandInCaddy(t *testing.T) (*standInCaddyAdmin, string) {
	t.Helper()
	a := &standInCaddyAdmin{holder: map[string]any{"root": nil}}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv.URL
}

func (a *standInCaddyAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var body any
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
			return
		}
	}
	if r.Method != http.MethodGet {
		a.changes = append(a.changes, r.Method+" "+r.URL.Path)
	}
	var parent any = a.holder
	key := "root"
	var rest []string
	switch {
	case r.URL.Path == "/load" && r.Method == http.MethodPost:
		if b, _ := json.Marshal(body); a.stock && strings.Contains(string(b), `"switchyard_`) {
			http.Error(w, `{"error":"loading config: loading new config: loading http app module: provision http: server switchyard-web-prod: setting up route handlers: route 0: loading handler modules: position 0: unknown module: http.handlers.switchyard_mirror"}`, http.StatusBadRequest)
			return
		}
		a.holder["root"] = body
		return
	case strings.HasPrefix(r.URL.Path, "/config/"):
		rest = split(strings.TrimPrefix(r.URL.Path, "/config/"))
	case strings.HasPrefix(r.URL.Path, "/id/"):
		parts := split(strings.TrimPrefix(r.URL.Path, "/id/"))
		var ok bool
		if parent, key, ok = findID(a.holder, parts[0]); !ok {
			http.Error(w, `{"error":"unknown object ID '`+parts[0]+`'"}`, http.StatusNotFound)
			return
		}
		rest = parts[1:]
	default:
		http.NotFound(w, r)
		return
	}
	for _, seg := range rest {
		cur, ok := get(parent, key)
		if !ok || cur == nil {
			if r.Method != http.MethodPut {
				http.Error(w, `{"error":"invalid traversal path"}`, http.StatusNotFound)
				return
			}
			cur = map[string]any{}
			set(parent, key, cur)
		}
		parent, key = cur, seg
	}
	cur, exists := get(parent, key)
	switch r.Method {
	case http.MethodGet:
		_ = json.NewEncoder(w).Encode(cur)
	case http.MethodPatch:
		if !exists {
			http.Error(w, `{"error":"key does not exist"}`, http.StatusNotFound)
			return
		}
		set(parent, key, body)
	case http.MethodPut:
		set(parent, key, body)
	}
}

func split(p string) []string {
	var out []string
	for _, s := range strings.Split(strings.Trim(p, "/"), "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

func get(c any, k string) (any, bool) {
	switch c := c.(type) {
	case map[string]any:
		v, ok := c[k]
		return v, ok
	case []any:
		if i, err := strconv.Atoi(k); err == nil && i < len(c) {
			return c[i], true
		}
	}
	return nil, false
}

func set(c any, k string, v any) {
	switch c := c.(type) {
	case map[string]any:
		c[k] = v
	case []any:
		if i, err := strconv.Atoi(k); err == nil && i < len(c) {
			c[i] = v
		}
	}
}

// findID returns the parent and key of the object whose "@id" is id.
func findID(c any, id string) (any, string, bool) {
	switch c := c.(type) {
	case map[string]any:
		for k, v := range c {
			if m, ok := v.(map[string]any); ok && m["@id"] == id {
				return c, k, true
			}
			if p, key, ok := findID(v, id); ok {
				return p, key, true
			}
		}
	case []any:
		for i, v := range c {
			if m, ok := v.(map[string]any); ok && m["@id"] == id {
				return c, strconv.Itoa(i), true
			}
			if p, key, ok := findID(v, id); ok {
				return p, key, true
			}
		}
	}
	return nil, "", false
}

func TestCaddyAdminStandInCreatesItsServerAnswering503UntilASlotIsLive(t *testing.T) {
	a, admin := startStandInCaddy(t)
	c := &Caddy{Admin: admin, Listen: "127.0.0.1:8080", ID: "switchyard-api-prod", Blue: []string{"127.0.0.1:9001"}, Green: []string{"127.0.0.1:9002"}}
	ctx := context.Background()
	if _, err := c.Weights(ctx); err == nil || !strings.Contains(err.Error(), "no handler with @id switchyard-api-prod") {
		t.Fatalf("before Ensure: %v", err)
	}
	if err := c.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if len(a.changes) != 1 || a.changes[0] != "POST /load" {
		t.Fatalf("Ensure on an empty Caddy loads once, then leaves it alone: %v", a.changes)
	}
	srv, _ := get(a.holder["root"].(map[string]any)["apps"].(map[string]any)["http"].(map[string]any)["servers"], "switchyard-api-prod")
	b, _ := json.Marshal(srv)
	if !strings.Contains(string(b), `"status_code":503`) || !strings.Contains(string(b), `"listen":["127.0.0.1:8080"]`) {
		t.Fatalf("the new server: %s", b)
	}
	if w, err := c.Weights(ctx); err != nil || w != (rollout.Weights{}) {
		t.Fatalf("no slot live: %s %v", w, err)
	}
}

func TestCaddyAdminStandInChangesOnlyTheWeightsOnceASlotIsLive(t *testing.T) {
	a, admin := startStandInCaddy(t)
	c := &Caddy{Admin: admin, Listen: "127.0.0.1:8080", ID: "switchyard-api-prod",
		Blue: []string{"127.0.0.1:9001", "127.0.0.1:9002"}, Green: []string{"127.0.0.1:9011", "127.0.0.1:9012"}}
	ctx := context.Background()
	for _, w := range []rollout.Weights{{Blue: 100}, {Blue: 90, Green: 10}, {Blue: 50, Green: 50}, {Green: 100}} {
		if err := c.SetWeights(ctx, w); err != nil {
			t.Fatalf("set %s: %v", w, err)
		}
		if got, err := c.Weights(ctx); err != nil || got != w {
			t.Fatalf("set %s, read %s (%v)", w, got, err)
		}
	}
	writes := a.changes[len(a.changes)-3:]
	for _, ch := range writes {
		if ch != "PATCH /id/switchyard-api-prod/load_balancing/selection_policy/weights" {
			t.Fatalf("a weight change between live splits rewrote more than the weights: %v", a.changes)
		}
	}
	h, _ := json.Marshal(mustGet(t, admin, "/id/switchyard-api-prod/load_balancing/selection_policy/weights"))
	if string(h) != "[0,0,1,1]" {
		t.Fatalf("every replica carries its slot's weight: %s", h)
	}
	// Caddy serves weights as runs (75 to blue in a row, then 25 to green):
	// they go over reduced, so the slots interleave, and read back whole
	if err := c.SetWeights(ctx, rollout.Weights{Blue: 75, Green: 25}); err != nil {
		t.Fatal(err)
	}
	h, _ = json.Marshal(mustGet(t, admin, "/id/switchyard-api-prod/load_balancing/selection_policy/weights"))
	if got, _ := c.Weights(ctx); string(h) != "[3,3,1,1]" || got != (rollout.Weights{Blue: 75, Green: 25}) {
		t.Fatalf("75/25 went over as %s and reads back as %s", h, got)
	}
	// a replica more: the upstreams are rewritten, not only the weights
	c.Green = append(c.Green, "127.0.0.1:9013")
	if err := c.SetWeights(ctx, rollout.Weights{Green: 100}); err != nil {
		t.Fatal(err)
	}
	if last := a.changes[len(a.changes)-1]; last != "PATCH /id/switchyard-api-prod" {
		t.Fatalf("a changed replica count rewrites the handler: %v", last)
	}
}

func TestCaddyAdminStandInRefusesAHandlerChangedByHand(t *testing.T) {
	_, admin := startStandInCaddy(t)
	c := &Caddy{Admin: admin, Listen: "127.0.0.1:8080", ID: "svc", Blue: []string{"127.0.0.1:9001"}, Green: []string{"127.0.0.1:9002"}}
	if err := c.SetWeights(context.Background(), rollout.Weights{Blue: 100}); err != nil {
		t.Fatal(err)
	}
	other := &Caddy{Admin: admin, ID: "svc", Blue: []string{"127.0.0.9:1"}, Green: []string{"127.0.0.9:2"}}
	if _, err := other.Weights(context.Background()); err == nil || !strings.Contains(err.Error(), "none of them a slot of this service") {
		t.Fatalf("got %v", err)
	}
	down := &Caddy{Admin: "http://127.0.0.1:1", ID: "svc"}
	if _, err := down.Weights(context.Background()); err == nil || !strings.Contains(err.Error(), "is Caddy's admin API listening at http://127.0.0.1:1?") {
		t.Fatalf("admin down: %v", err)
	}
}

func TestCaddyAdminStandInEmbeddedRouterKindNeedsTheWorkersRouter(t *testing.T) {
	_, admin := startStandInCaddy(t)
	c := &Caddy{Admin: admin, Listen: "127.0.0.1:8080", ID: "svc", embedded: true, Blue: []string{"a:1"}, Green: []string{"a:2"}}
	if err := c.Ensure(context.Background()); err == nil || !strings.Contains(err.Error(), "needs the worker's embedded router") {
		t.Fatalf("got %v", err)
	}
}

func mustGet(t *testing.T, admin, path string) any {
	t.Helper()
	resp, err := http.Get(admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// A spec that says its Caddy has Switchyard's modules, pointed at one that
// has not: the error says what to build.
func TestACaddyWithoutSwitchyardsModulesIsNamedOnStandInAdmin(t *testing.T) {
	a, url := startStandInCaddy(t)
	a.stock = true
	c := &Caddy{Admin: url, Listen: "127.0.0.1:9100", ID: "switchyard-web-prod", Blue: []string{"127.0.0.1:9101"}, Green: []string{"127.0.0.1:9102"}, modules: true}
	err := c.Ensure(context.Background())
	if err == nil || !strings.Contains(err.Error(), "unknown module: http.handlers.switchyard_mirror") ||
		!strings.Contains(err.Error(), "router.caddy.switchyardModules is true but the Caddy at "+url+" lacks Switchyard's modules: build it with go build -o caddy ./cmd/caddy") {
		t.Fatalf("Ensure: %v", err)
	}
	c.modules = false // the same Caddy with its own modules only
	if err := c.Ensure(context.Background()); err != nil {
		t.Fatalf("stock config: %v", err)
	}
}
