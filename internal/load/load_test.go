package load

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// The two clients differ only in connections: kept alive (a handful for
// the whole run) or one per request.
func TestKeepAliveReusesConnectionsAndNewConnectionsOpensOnePerRequest(t *testing.T) {
	for _, c := range []struct {
		name  string
		start func(string, int, time.Duration) *Generator
		fresh bool
	}{{"keep-alive", Start, false}, {"new-connections", StartNewConnections, true}} {
		t.Run(c.name, func(t *testing.T) {
			var conns atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Version", "v1")
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			defer srv.Close()
			g := c.start(srv.URL, 200, time.Minute)
			time.Sleep(time.Second)
			res := g.Stop()
			if res.Requests < 100 || res.Failed != 0 || res.ByVersion["v1"] != res.Requests {
				t.Fatalf("want ≥ 100 requests answered by v1, none failed: %s", res)
			}
			n := int(conns.Load())
			if c.fresh && n != res.Requests {
				t.Fatalf("%d connections for %d requests: want one each", n, res.Requests)
			}
			if !c.fresh && n > 16 {
				t.Fatalf("%d connections for %d requests: want at most 16 (one per request in flight)", n, res.Requests)
			}
			t.Logf("%s: %d requests over %d connections", c.name, res.Requests, n)
		})
	}
}
