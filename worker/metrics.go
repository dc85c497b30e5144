package worker

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/uber-go/tally/v4"
	"github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// ServeMetrics serves Prometheus /metrics on addr and returns the handler to
// give the Temporal client: the SDK's series and Switchyard's own
// (switchyard_rollouts_total, switchyard_rollback_duration,
// switchyard_traffic_weight, switchyard_check_results_total,
// switchyard_alerts_sent_total, switchyard_alerts_failed_total).
func ServeMetrics(addr string) (client.MetricsHandler, func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: listen %s: %w (use --metrics to pick another address)", addr, err)
	}
	reporter := prometheus.NewReporter(prometheus.Options{
		Registerer:       prom.NewRegistry(),
		DefaultTimerType: prometheus.HistogramTimerType,
		OnRegisterError:  func(error) {},
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       prometheus.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, time.Second)
	mux := http.NewServeMux()
	mux.Handle("/metrics", reporter.HTTPHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Println("metrics:", err)
		}
	}()
	stop := func() {
		_ = closer.Close()
		_ = srv.Close()
	}
	return sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)), stop, nil
}

// ServePprof serves Go's profiles (net/http/pprof) on a loopback address:
// they show the worker's insides, so never on a routable one.
func ServePprof(addr string) (func(), error) {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("--pprof %s: must be a loopback address like 127.0.0.1:6060", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof: listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return func() { _ = srv.Close() }, nil
}
