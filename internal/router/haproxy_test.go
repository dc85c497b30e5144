package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/internal/rollout"
)

// standInHAProxy speaks the part of HAProxy's runtime API the router uses,
// on a unix socket: one command line per connection, answered, then closed.
// The end-to-end tests run the real HAProxy; this one is for fast checks of
// what the router sends and how it reads the answers.
type standInHAProxy struct {
	mu      sync.Mutex
	backend string
	weights map[string]int    // server → weight
	addrs   map[string]string // server → host:port
	stuck   map[string]bool   // servers that ignore set weight
	// log is every command in the order applied, and apply is the weights
	// after each one, so a test can see every intermediate state.
	log     []string
	history []map[string]int
	stat    string
}

func startStandIn(t *testing.T, servers ...string) (*standInHAProxy, string) {
	t.Helper()
	h := &standInHAProxy{backend: "app", weights: map[string]int{}, addrs: map[string]string{}, stuck: map[string]bool{}}
	for _, s := range servers {
		h.weights[s] = 0
	}
	sock := filepath.Join(t.TempDir(), "haproxy.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			var out strings.Builder
			for _, cmd := range strings.Split(strings.TrimSpace(line), ";") {
				out.WriteString(h.do(strings.TrimSpace(cmd)))
			}
			fmt.Fprint(c, out.String())
			c.Close()
		}
	}()
	return h, sock
}

// record logs a command and the weights after it (the caller holds h.mu).
func (h *standInHAProxy) record(cmd string) {
	h.log = append(h.log, cmd)
	snap := map[string]int{}
	for k, v := range h.weights {
		snap[k] = v
	}
	h.history = append(h.history, snap)
}

func (h *standInHAProxy) do(cmd string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := strings.Fields(cmd)
	server := func(i int) (string, bool) {
		be, sv, _ := strings.Cut(f[i], "/")
		_, ok := h.weights[sv]
		return sv, ok && be == h.backend
	}
	switch {
	case len(f) == 4 && f[0] == "set" && f[1] == "weight":
		sv, ok := server(2)
		if !ok {
			return "No such server.\n\n"
		}
		if !h.stuck[sv] {
			h.weights[sv], _ = strconv.Atoi(f[3])
		}
		h.record(cmd)
		return "\n"
	case len(f) == 3 && f[0] == "get" && f[1] == "weight":
		sv, ok := server(2)
		if !ok {
			return "No such server.\n\n"
		}
		return fmt.Sprintf("%d (initial 1)\n\n", h.weights[sv])
	case len(f) == 7 && f[0] == "set" && f[1] == "server" && f[3] == "addr":
		sv, ok := server(2)
		if !ok {
			return "No such server.\n\n"
		}
		addr := f[4] + ":" + f[6]
		if h.addrs[sv] == addr {
			return "no need to change the addr\n\n"
		}
		h.addrs[sv] = addr
		return "IP changed from '0.0.0.0' to '" + f[4] + "', port changed from '0' to '" + f[6] + "' by 'stats socket command'\n\n"
	case len(f) == 5 && f[0] == "set" && f[1] == "server" && f[3] == "health" && f[4] == "up":
		if _, ok := server(2); !ok {
			return "No such server.\n\n"
		}
		h.record(cmd)
		return "\n"
	case cmd == "show stat":
		return h.stat
	}
	return "Unknown command: '" + cmd + "'\n\n"
}

func TestHAProxyStandInSetsWeightsRaisingBeforeLoweringSoNoInstantHasNoServer(t *testing.T) {
	h, sock := startStandIn(t, "blue", "green")
	r := &HAProxy{Socket: sock, Backend: "app", Blue: []string{"127.0.0.1:9001"}, Green: []string{"127.0.0.1:9002"}}
	ctx := context.Background()
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Ensure(ctx); err != nil {
		t.Fatalf("a second Ensure (addresses unchanged) must pass: %v", err)
	}
	if h.addrs["green"] != "127.0.0.1:9002" {
		t.Fatalf("green's address: %q", h.addrs["green"])
	}
	for _, w := range []rollout.Weights{{Blue: 100}, {Blue: 90, Green: 10}, {Blue: 25, Green: 75}, {Green: 100}, {Blue: 100}} {
		if err := r.SetWeights(ctx, w); err != nil {
			t.Fatalf("set %s: %v", w, err)
		}
		if got, err := r.Weights(ctx); err != nil || got != w {
			t.Fatalf("after setting %s the router reads %s (%v)", w, got, err)
		}
	}
	for i, snap := range h.history {
		if i > 0 && snap["blue"] == 0 && snap["green"] == 0 {
			t.Fatalf("after %q both servers had weight 0: %v", h.log[i], h.log)
		}
	}
	// a slot raised from 0 is marked healthy first (HAProxy's own check
	// may not have run yet), and only then
	var ups []string
	for _, l := range h.log {
		if strings.HasSuffix(l, "health up") {
			ups = append(ups, l)
		}
	}
	if want := "[set server app/blue health up set server app/green health up set server app/blue health up]"; fmt.Sprint(ups) != want {
		t.Fatalf("health up sent %v, want %s (each time a slot goes from 0 to some)", ups, want)
	}
	// green=100 → blue=100: blue is raised first
	n := len(h.log)
	if h.log[n-2] != "set weight app/blue 100" || h.log[n-1] != "set weight app/green 0" {
		t.Fatalf("the last change lowered before it raised: %v", h.log[n-2:])
	}
}

func TestHAProxyStandInVerifyCatchesAWeightThatDidNotLand(t *testing.T) {
	h, sock := startStandIn(t, "blue", "green", "green-2")
	h.stuck["green-2"] = true
	r := &HAProxy{Socket: sock, Backend: "app", Blue: []string{"127.0.0.1:9001"}, Green: []string{"127.0.0.1:9002", "127.0.0.1:9003"}}
	if err := r.SetWeights(context.Background(), rollout.Weights{Blue: 50, Green: 50}); err != nil {
		t.Fatal(err)
	}
	err := Verify(context.Background(), r, "haproxy", rollout.Weights{Blue: 50, Green: 50})
	if err == nil || !strings.Contains(err.Error(), "the servers of slot green disagree: app/green has weight 50, app/green-2 0") {
		t.Fatalf("want the stuck replica named, got %v", err)
	}
	h.stuck["green-2"] = false
	if err := r.SetWeights(context.Background(), rollout.Weights{Blue: 50, Green: 50}); err != nil {
		t.Fatal(err)
	}
	if err := Verify(context.Background(), r, "haproxy", rollout.Weights{Blue: 50, Green: 50}); err != nil {
		t.Fatalf("set again, all replicas agree: %v", err)
	}
	var mm *MismatchError
	if err := Verify(context.Background(), r, "haproxy", rollout.Weights{Blue: 25, Green: 75}); !errors.As(err, &mm) || mm.Got != (rollout.Weights{Blue: 50, Green: 50}) {
		t.Fatalf("a verify of weights never set: %v", err)
	}
}

func TestHAProxyStandInNamesTheServersABackendLacks(t *testing.T) {
	_, sock := startStandIn(t, "blue", "green")
	r := &HAProxy{Socket: sock, Backend: "app", Blue: []string{"127.0.0.1:9001", "127.0.0.1:9002"}, Green: []string{"127.0.0.1:9003", "127.0.0.1:9004"}}
	err := r.Ensure(context.Background())
	if err == nil || !strings.Contains(err.Error(), "backend app needs the servers blue, blue-2 and green, green-2") {
		t.Fatalf("got %v", err)
	}
	if _, err := r.Weights(context.Background()); err == nil || !strings.Contains(err.Error(), "blue-2") {
		t.Fatalf("reading weights of a missing replica: %v", err)
	}
}

func TestHAProxyStandInCountersSumReplicasAndCountFailedResponses(t *testing.T) {
	h, sock := startStandIn(t, "blue", "green", "green-2")
	h.stat = "# pxname,svname,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,eresp,rtime,\n" +
		"front,FRONTEND,0,500,0,0,0,0,0,0,\n" +
		"app,blue,0,300,0,2,1,0,0,4,\n" +
		"app,green,0,90,0,0,5,0,1,12,\n" +
		"app,green-2,0,100,0,0,0,0,0,7,\n" +
		"app,BACKEND,0,490,0,2,6,0,1,8,\n\n"
	r := &HAProxy{Socket: sock, Backend: "app", Blue: []string{"a:1"}, Green: []string{"a:2", "a:3"}}
	c, err := r.Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b := c[rollout.Blue]; b.Requests != 303 || b.Errors != 1 || b.AvgResponseMs != 4 {
		t.Fatalf("blue: %+v", b)
	}
	// green: 95+1 and 100 requests; 5 5xx and 1 failed response; the slower replica's average
	if g := c[rollout.Green]; g.Requests != 196 || g.Errors != 6 || g.AvgResponseMs != 12 {
		t.Fatalf("green: %+v", g)
	}
}

func TestHAProxyStandInNotRunningSaysHowToConfigureIt(t *testing.T) {
	r := &HAProxy{Socket: filepath.Join(t.TempDir(), "none.sock"), Backend: "app", Blue: []string{"a:1"}, Green: []string{"a:2"}}
	_, err := r.Weights(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is HAProxy running with 'stats socket") {
		t.Fatalf("got %v", err)
	}
}
