// Package check verifies a slot over HTTP: health, smoke requests, a bounded
// performance probe, and the analysis of real traffic during a bake.
package check

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

var client = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
}

// Health waits for h.Successes consecutive 2xx answers within h.Timeout.
func Health(ctx context.Context, base string, h spec.Health, heartbeat func(string)) error {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout.D())
	defer cancel()
	ok, last := 0, ""
	for i := 0; ; i++ {
		code, _, err := get(ctx, base+h.Path)
		switch {
		case err == nil && code/100 == 2:
			ok++
			if ok >= h.Successes {
				return nil
			}
		case err != nil:
			ok, last = 0, err.Error()
		default:
			ok, last = 0, fmt.Sprintf("status %d", code)
		}
		if heartbeat != nil && i%8 == 0 {
			heartbeat(fmt.Sprintf("health %s: %d/%d", base+h.Path, ok, h.Successes))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("health: %s did not answer 2xx %d times in a row within %s (last: %s)", base+h.Path, h.Successes, h.Timeout, last)
		case <-time.After(h.Interval.D()):
		}
	}
}

// Smoke sends one listed request and checks its status and body.
func Smoke(ctx context.Context, base, version string, s spec.Smoke) error {
	req, err := http.NewRequestWithContext(ctx, s.Method, base+s.Path, nil)
	if err != nil {
		return fmt.Errorf("smoke %s: %w", s.Name, err)
	}
	withHeader(req)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("smoke %s: %w", s.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != s.Status {
		return fmt.Errorf("smoke %s: status %d, want %d", s.Name, resp.StatusCode, s.Status)
	}
	if want := strings.ReplaceAll(s.BodyContains, "{{version}}", version); want != "" && !strings.Contains(string(body), want) {
		return fmt.Errorf("smoke %s: body does not contain %q (got %.80q)", s.Name, want, body)
	}
	return nil
}

// Stats summarises a bounded probe.
type Stats struct {
	Requests int           `json:"requests"`
	Errors   int           `json:"errors"`
	P50      time.Duration `json:"p50"`
	P95      time.Duration `json:"p95"`
	P99      time.Duration `json:"p99"`
}

// ErrorRate is errors over requests.
func (s Stats) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

func (s Stats) String() string {
	return fmt.Sprintf("%d requests, %d errors (%.2f%%), p50 %s, p95 %s, p99 %s",
		s.Requests, s.Errors, 100*s.ErrorRate(), s.P50.Round(time.Microsecond), s.P95.Round(time.Microsecond), s.P99.Round(time.Microsecond))
}

// Probe sends exactly n GETs with the given concurrency. A 5xx or a failed
// request counts as an error.
func Probe(ctx context.Context, url string, n, concurrency int) Stats {
	lat := make([]time.Duration, n)
	errs := make([]bool, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := time.Now()
				code, _, err := get(ctx, url)
				lat[i] = time.Since(t)
				errs[i] = err != nil || code >= 500
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	st := Stats{Requests: n}
	for _, e := range errs {
		if e {
			st.Errors++
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	st.P50, st.P95, st.P99 = Quantile(lat, 0.50), Quantile(lat, 0.95), Quantile(lat, 0.99)
	return st
}

// Quantile of sorted durations (nearest rank).
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

// Performance compares a probe of the candidate with the limits and, when
// there is one, with a probe of the live slot.
func Performance(cand Stats, live *Stats, p spec.Performance) error {
	var why []string
	if cand.ErrorRate() > p.MaxErrorRate {
		why = append(why, fmt.Sprintf("error rate %.2f%% over the %.2f%% limit", 100*cand.ErrorRate(), 100*p.MaxErrorRate))
	}
	if cand.P95 > p.MaxP95.D() {
		why = append(why, fmt.Sprintf("p95 %s over the %s limit", cand.P95.Round(time.Microsecond), p.MaxP95))
	}
	// a floor keeps microsecond noise on a fast baseline from failing the check
	if live != nil && p.MaxP95Ratio > 0 {
		limit := time.Duration(float64(live.P95)*p.MaxP95Ratio) + 5*time.Millisecond
		if cand.P95 > limit {
			why = append(why, fmt.Sprintf("p95 %s over %.1f× the live slot's %s", cand.P95.Round(time.Microsecond), p.MaxP95Ratio, live.P95.Round(time.Microsecond)))
		}
	}
	if len(why) > 0 {
		return fmt.Errorf("performance: %s", strings.Join(why, "; "))
	}
	return nil
}

func get(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	withHeader(req)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, nil
}

// ScrapeRequests reads a Prometheus text endpoint and sums the
// http_requests_total counter: all series, and those with a 5xx code label.
func ScrapeRequests(ctx context.Context, url string) (total, errors int64, err error) {
	code, body, err := get(ctx, url)
	if err != nil {
		return 0, 0, fmt.Errorf("metrics %s: %w", url, err)
	}
	if code != 200 {
		return 0, 0, fmt.Errorf("metrics %s: status %d", url, code)
	}
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "http_requests_total") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(f[1], "%g", &v); err != nil {
			continue
		}
		found = true
		total += int64(v)
		if strings.Contains(f[0], `code="5`) {
			errors += int64(v)
		}
	}
	if !found {
		return 0, 0, fmt.Errorf("metrics %s: no http_requests_total series", url)
	}
	return total, errors, nil
}

type headerKey struct{}

// WithHeader makes every check request under ctx carry a header: the
// router's test route, which sends them to the idle slot.
func WithHeader(ctx context.Context, name, value string) context.Context {
	return context.WithValue(ctx, headerKey{}, [2]string{name, value})
}

func withHeader(req *http.Request) {
	if h, ok := req.Context().Value(headerKey{}).([2]string); ok {
		req.Header.Set(h[0], h[1])
	}
}
