// Command demo-app is the service the demo and the tests roll out: a small
// HTTP server that says which version it is, with failure injection so a bad
// release can be shown.
//
//	PORT, HOST, VERSION      where to listen, what to report
//	DEMO_ERROR_RATE=0.3      answer 30% of requests to / with 500
//	DEMO_LATENCY=200ms       add latency to /
//	DEMO_PRICE_BUG=1         /price answers a wrong price, still 200 (for shadow traffic)
//	DEMO_DB_URL              a PostgreSQL URL: serve /users from its users table
//	DEMO_DB_COLUMN=name      the column this version keeps a user's name in
//	demo-app healthcheck     GET /healthz of the running app, exit 0 or 1
//	                         (a HEALTHCHECK for images with no shell or curl)
//
// A "bad build" bakes the failure in: go build -ldflags "-X main.errorRate=0.5".
package main

import (
	"context"
	"fmt"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// errorRate is the built-in failure rate; DEMO_ERROR_RATE overrides it.
var errorRate = "0"

type app struct {
	version, slot string
	errorRate     atomic.Uint64 // math.Float64bits: set at run time by /admin/fail?rate=
	latency       time.Duration
	served        atomic.Int64
	unhealthy     atomic.Bool
	mu            sync.Mutex
	byCode        map[int]int64
	// latencies of / in the buckets of http_request_duration_seconds
	buckets  [len(bounds)]int64
	durSum   float64
	durCount int64
}

// bounds are the histogram's upper bounds, in seconds (Prometheus' defaults, to 1s).
var bounds = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck())
	}
	version := getenv("VERSION", "dev")
	rate, err := strconv.ParseFloat(getenv("DEMO_ERROR_RATE", errorRate), 64)
	if err != nil || rate < 0 || rate > 1 {
		log.Fatalf("demo-app: DEMO_ERROR_RATE must be a fraction between 0 and 1, got %q", os.Getenv("DEMO_ERROR_RATE"))
	}
	latency, err := time.ParseDuration(getenv("DEMO_LATENCY", "0s"))
	if err != nil {
		log.Fatalf("demo-app: DEMO_LATENCY: %v", err)
	}
	a := &app{version: version, slot: os.Getenv("SWITCHYARD_SLOT"), latency: latency, byCode: map[int]int64{}}
	a.errorRate.Store(math.Float64bits(rate))
	addr := net.JoinHostPort(getenv("HOST", "127.0.0.1"), getenv("PORT", "8080"))
	mux := http.NewServeMux()
	mux.HandleFunc("/", a.root)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if a.unhealthy.Load() {
			http.Error(w, "unhealthy (failure injected)", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// failure injection at run time, for monitoring and guard demos:
	// /admin/fail?health=1 (or 0) fails the health check, ?rate=0.5 half the requests
	mux.HandleFunc("/admin/fail", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Has("health") {
			a.unhealthy.Store(q.Get("health") == "1")
		}
		if q.Has("rate") {
			f, err := strconv.ParseFloat(q.Get("rate"), 64)
			if err != nil || f < 0 || f > 1 {
				http.Error(w, "rate must be a fraction between 0 and 1", http.StatusBadRequest)
				return
			}
			a.errorRate.Store(math.Float64bits(f))
		}
		fmt.Fprintf(w, "unhealthy=%v rate=%g\n", a.unhealthy.Load(), math.Float64frombits(a.errorRate.Load()))
	})
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, version) })
	bug := os.Getenv("DEMO_PRICE_BUG") == "1"
	var priced atomic.Int64
	// /price?item=N: the same answer from every version, unless it has the
	// bug; it fails at the error rate as / does
	mux.HandleFunc("/price", func(w http.ResponseWriter, r *http.Request) {
		n := priced.Add(1)
		if rate := math.Float64frombits(a.errorRate.Load()); rate > 0 && int64(float64(n)*rate) > int64(float64(n-1)*rate) {
			http.Error(w, "price service failed", http.StatusInternalServerError)
			return
		}
		item, _ := strconv.Atoi(r.URL.Query().Get("item"))
		price := item * 3
		if bug {
			price = item * 4
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Version", version)
		fmt.Fprintf(w, "{\"item\":%d,\"price\":%d}\n", item, price)
	})
	mux.HandleFunc("/metrics", a.metrics)
	if url := os.Getenv("DEMO_DB_URL"); url != "" {
		u, err := openUsers(url, getenv("DEMO_DB_COLUMN", "name"))
		if err != nil {
			log.Fatalf("demo-app: %v", err)
		}
		mux.HandleFunc("/users", u.create)
		mux.HandleFunc("/users/", u.read)
	}
	srv := &http.Server{Addr: addr, Handler: secure(mux), ReadHeaderTimeout: 5 * time.Second}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("demo-app: listen %s: %v", addr, err)
	}
	log.Printf("demo-app %s listening on %s (error rate %.2f, latency %s)", version, addr, rate, latency)
	go func() {
		if err := srv.Serve(l); err != http.ErrServerClosed {
			log.Fatalf("demo-app: %v", err)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	// finish what is in flight, so a retired slot fails no request
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	log.Printf("demo-app %s stopped after %d requests", version, a.served.Load())
}

func (a *app) root(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	n := a.served.Add(1)
	start := time.Now()
	defer a.observe(start)
	if a.latency > 0 {
		time.Sleep(a.latency)
	}
	w.Header().Set("X-Version", a.version)
	w.Header().Set("X-Slot", a.slot)
	// deterministic: request n fails when the running count of failures owed grows
	code := http.StatusOK
	if rate := math.Float64frombits(a.errorRate.Load()); rate > 0 && int64(float64(n)*rate) > int64(float64(n-1)*rate) {
		code = http.StatusInternalServerError
	}
	a.mu.Lock()
	a.byCode[code]++
	a.mu.Unlock()
	w.WriteHeader(code)
	fmt.Fprintf(w, "hello from %s (slot %s)\n", a.version, a.slot)
}

func (a *app) observe(start time.Time) {
	d := time.Since(start).Seconds()
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, b := range bounds {
		if d <= b {
			a.buckets[i]++
		}
	}
	a.durSum += d
	a.durCount++
}

func (a *app) metrics(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fmt.Fprintln(w, "# TYPE http_requests_total counter")
	for _, code := range []int{200, 500} {
		fmt.Fprintf(w, "http_requests_total{code=\"%d\"} %d\n", code, a.byCode[code])
	}
	fmt.Fprintln(w, "# TYPE http_request_duration_seconds histogram")
	for i, b := range bounds {
		fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=\"%g\"} %d\n", b, a.buckets[i])
	}
	fmt.Fprintf(w, "http_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", a.durCount)
	fmt.Fprintf(w, "http_request_duration_seconds_sum %g\n", a.durSum)
	fmt.Fprintf(w, "http_request_duration_seconds_count %d\n", a.durCount)
}

// secure sets the headers a security check expects of a web service.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		h.ServeHTTP(w, r)
	})
}

func healthcheck() int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(getenv("HOST", "127.0.0.1"), getenv("PORT", "8080")) + "/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		fmt.Fprintln(os.Stderr, "healthcheck:", resp.Status)
		return 1
	}
	return 0
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
