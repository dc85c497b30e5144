package analysis

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/switchyard/switchyard/internal/check"
	"github.com/switchyard/switchyard/internal/rollout"
)

// Source is where a metric's numbers come from. Prometheus, the router's
// per-slot counters, the slots' own /metrics, a direct probe and an HTTP
// endpoint answering JSON all answer the same two questions, so one
// Measure judges every metric alike: the same decisions, failure limits,
// explanations and charts whatever the source (argo-rollouts' metric
// providers, flagger's RunQuery, in one interface).
type Source interface {
	// Name is how results name the source: prometheus, haproxy-stats, metrics, probe, web.
	Name() string
	// Value is the query's one number for the slot at the moment; why says,
	// instead, why the answer holds none (no data: onNoData decides).
	Value(ctx context.Context, q Query) (v float64, why string, err error)
	// Series is the query's values over the window, for a judge; a source
	// that keeps no history answers why it has none.
	Series(ctx context.Context, q Query, w Window) (v []float64, why string, err error)
}

// Every source, checked by the compiler.
var (
	_ Source = (*Prometheus)(nil)
	_ Source = (*Counters)(nil)
	_ Source = (*Probe)(nil)
	_ Source = (*Web)(nil)
)

// Query is one question to a source: the metric's query as rendered for
// the slot asked about.
type Query struct {
	Text string
	Slot rollout.Slot
	At   time.Time
}

// The queries counter sources answer (the router's, the slots' metricsPath, a probe).
const (
	QRequests      = "requests"        // requests in the step
	QErrors        = "errors"          // 5xx and failed requests in the step
	QErrorRate     = "error_rate"      // errors / requests, 0…1
	QAvgResponseMs = "avg_response_ms" // the router's average response time (HAProxy)
	QP95Ms         = "p95_ms"          // a probe's p95
)

// noHistory is why a counter source cannot feed a judge.
const noHistory = "this source keeps no series over time (a judge needs Prometheus or web)"

// Counters answers from cumulative per-slot counters, read at the step's
// start (Base) and now: the router's (HAProxy's stats), or the slots'
// http_requests_total read from their metricsPath.
type Counters struct {
	Source    string // haproxy-stats, metrics
	Base, Now map[rollout.Slot]rollout.Counters
}

func (c *Counters) Name() string { return c.Source }

// Value is the counters' change over the step for the slot.
func (c *Counters) Value(_ context.Context, q Query) (float64, string, error) {
	now, okNow := c.Now[q.Slot]
	base, okBase := c.Base[q.Slot]
	if !okNow || !okBase {
		return 0, fmt.Sprintf("%s has no counters for slot %s", c.Source, q.Slot), nil
	}
	if now.Requests < base.Requests {
		base = rollout.Counters{} // the counters restarted: counting from zero
	}
	reqs, errs := now.Requests-base.Requests, now.Errors-base.Errors
	switch q.Text {
	case QRequests:
		return float64(reqs), "", nil
	case QErrors:
		return float64(errs), "", nil
	case QErrorRate:
		if reqs == 0 {
			return 0, fmt.Sprintf("no requests reached slot %s in the step", q.Slot), nil
		}
		return float64(errs) / float64(reqs), "", nil
	case QAvgResponseMs:
		if c.Source == "metrics" {
			return 0, "", fmt.Errorf("a slot's metricsPath counts requests, not response times: %s needs the router's counters or a probe", q.Text)
		}
		if reqs == 0 {
			return 0, fmt.Sprintf("no requests reached slot %s in the step", q.Slot), nil
		}
		return float64(now.AvgResponseMs), "", nil
	}
	return 0, "", fmt.Errorf("%s answers %s, %s, %s or %s, not %q", c.Source, QRequests, QErrors, QErrorRate, QAvgResponseMs, q.Text)
}

func (c *Counters) Series(context.Context, Query, Window) ([]float64, string, error) {
	return nil, noHistory, nil
}

// Probe answers by sending the slot a bounded burst of requests: the
// fallback where nothing counts the slot's traffic. One burst per slot
// per analysis, however many metrics read it.
type Probe struct {
	URL   func(rollout.Slot) string
	N     int
	stats map[rollout.Slot]check.Stats
}

func (p *Probe) Name() string { return "probe" }

func (p *Probe) Value(ctx context.Context, q Query) (float64, string, error) {
	st, ok := p.stats[q.Slot]
	if !ok {
		st = check.Probe(ctx, p.URL(q.Slot), p.N, 2)
		if p.stats == nil {
			p.stats = map[rollout.Slot]check.Stats{}
		}
		p.stats[q.Slot] = st
	}
	switch q.Text {
	case QRequests:
		return float64(st.Requests), "", nil
	case QErrors:
		return float64(st.Errors), "", nil
	case QErrorRate:
		return st.ErrorRate(), "", nil
	case QP95Ms, QAvgResponseMs:
		return float64(st.P95) / float64(time.Millisecond), "", nil
	}
	return 0, "", fmt.Errorf("a probe answers %s, %s, %s or %s, not %q", QRequests, QErrors, QErrorRate, QP95Ms, q.Text)
}

func (p *Probe) Series(context.Context, Query, Window) ([]float64, string, error) {
	return nil, noHistory, nil
}

// finite keeps a source's answer to numbers Measure can judge.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
