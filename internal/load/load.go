// Package load sends steady, bounded HTTP load through a router and counts
// what came back: the proof of "zero failed requests" in the demo, the tests
// and the benchmarks. It only ever targets the URL it is given (127.0.0.1).
package load

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Failure is one request that did not get a 2xx.
type Failure struct {
	At      time.Time
	Status  int
	Err     string
	Version string // X-Version of the answer, if one came
	Slot    string // X-Slot of the answer: which slot answered, if one did
}

// Cause classifies a failure by what the client saw.
func (f Failure) Cause() string {
	switch {
	case f.Err != "" && strings.Contains(f.Err, "connection reset"):
		return "connection reset (closed under a request)"
	case f.Err != "" && (strings.Contains(f.Err, "EOF") || strings.Contains(f.Err, "server closed")):
		return "connection closed before an answer"
	case f.Err != "" && strings.Contains(f.Err, "refused"):
		return "connection refused (router not listening)"
	case f.Err != "" && (strings.Contains(f.Err, "Timeout") || strings.Contains(f.Err, "deadline")):
		return "timeout"
	case f.Err != "":
		return "transport error"
	case f.Version != "":
		return fmt.Sprintf("%d from version %s (its own answer)", f.Status, f.Version)
	case f.Status == 503:
		return "503 from the router (no slot available)"
	}
	return fmt.Sprintf("%d from the router", f.Status)
}

// Result counts a run.
type Result struct {
	Requests  int
	Failed    int
	ByVersion map[string]int // from the X-Version header
	// FirstByVersion is when the first request answered by each version was sent.
	FirstByVersion map[string]time.Time
	Failures       []Failure // the first 100
	// Causes counts every failure by Failure.Cause.
	Causes   map[string]int
	P50, P99 time.Duration
	Duration time.Duration
}

func (r Result) String() string {
	vs := make([]string, 0, len(r.ByVersion))
	for v := range r.ByVersion {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	s := fmt.Sprintf("%d requests, %d failed over %s (p50 %s, p99 %s)", r.Requests, r.Failed, r.Duration.Round(time.Millisecond),
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond))
	for _, v := range vs {
		s += fmt.Sprintf("; %s: %d", v, r.ByVersion[v])
	}
	causes := make([]string, 0, len(r.Causes))
	for c := range r.Causes {
		causes = append(causes, c)
	}
	sort.Strings(causes)
	for _, c := range causes {
		s += fmt.Sprintf("; failed: %d × %s", r.Causes[c], c)
	}
	return s
}

// Generator is a running load.
type Generator struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	res    Result
	lat    []time.Duration
	start  time.Time
}

// Start sends rps GETs a second to url over kept-alive connections, with at
// most 16 in flight, until Stop or until max has passed, whichever comes first.
func Start(url string, rps int, max time.Duration) *Generator {
	return start(url, rps, max, &http.Transport{MaxIdleConnsPerHost: 16})
}

// StartNewConnections is Start with a new TCP connection for every request
// ("Connection: close"): the clients that see a router's connection
// handling, where kept-alive ones see its request handling.
func StartNewConnections(url string, rps int, max time.Duration) *Generator {
	return start(url, rps, max, &http.Transport{DisableKeepAlives: true})
}

// StartWithHeader is Start with a header on every request: the clients a
// header route sends to the new version.
func StartWithHeader(url string, rps int, max time.Duration, name, value string) *Generator {
	return start(url, rps, max, &headerTransport{&http.Transport{MaxIdleConnsPerHost: 16}, name, value})
}

type headerTransport struct {
	tr          *http.Transport
	name, value string
}

func (h *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.name, h.value)
	return h.tr.RoundTrip(r)
}

func start(url string, rps int, max time.Duration, tr http.RoundTripper) *Generator {
	ctx, cancel := context.WithTimeout(context.Background(), max)
	g := &Generator{cancel: cancel, done: make(chan struct{}), start: time.Now(), res: Result{ByVersion: map[string]int{}, FirstByVersion: map[string]time.Time{}, Causes: map[string]int{}}}
	client := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	slots := make(chan struct{}, 16)
	var wg sync.WaitGroup
	go func() {
		defer close(g.done)
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				wg.Wait()
				return
			case <-tick.C:
			}
			select {
			case slots <- struct{}{}:
			default:
				continue // all 16 busy: the rate bound wins over the schedule
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				g.one(client, url)
			}()
		}
	}()
	return g
}

func (g *Generator) one(client *http.Client, url string) {
	t := time.Now()
	resp, err := client.Get(url)
	d := time.Since(t)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.res.Requests++
	g.lat = append(g.lat, d)
	if err != nil {
		g.fail(Failure{At: t, Err: err.Error()})
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	v := resp.Header.Get("X-Version")
	if first, ok := g.res.FirstByVersion[v]; v != "" && (!ok || t.Before(first)) {
		g.res.FirstByVersion[v] = t
	}
	if resp.StatusCode/100 != 2 {
		g.fail(Failure{At: t, Status: resp.StatusCode, Version: v, Slot: resp.Header.Get("X-Slot")})
		return
	}
	g.res.ByVersion[v]++
}

func (g *Generator) fail(f Failure) {
	g.res.Failed++
	g.res.Causes[f.Cause()]++
	if len(g.res.Failures) < 100 {
		g.res.Failures = append(g.res.Failures, f)
	}
}

// Snapshot returns the counts so far.
func (g *Generator) Snapshot() Result {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.res
	r.ByVersion, r.Causes, r.FirstByVersion = maps.Clone(g.res.ByVersion), maps.Clone(g.res.Causes), maps.Clone(g.res.FirstByVersion)
	r.Failures = append([]Failure(nil), g.res.Failures...)
	lat := append([]time.Duration(nil), g.lat...)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if n := len(lat); n > 0 {
		r.P50, r.P99 = lat[n/2], lat[(n*99)/100]
	}
	r.Duration = time.Since(g.start)
	return r
}

// Stop ends the load, waits for requests in flight, and returns the counts.
func (g *Generator) Stop() Result {
	g.cancel()
	<-g.done
	return g.Snapshot()
}
