package spec

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Prometheus is the server a rollout's metrics are queried on.
type Prometheus struct {
	Address string `yaml:"address" json:"address"`
	// HeadersEnv maps a request header to the environment variable holding
	// its value (Authorization: PROM_AUTH): the value stays on the worker.
	HeadersEnv map[string]string `yaml:"headersEnv" json:"headersEnv,omitempty"`
	// TargetsFile is where the worker writes the slots as a file_sd target
	// list (JSON) for Prometheus to scrape; empty: none written.
	TargetsFile string `yaml:"targetsFile" json:"targetsFile,omitempty"`
	// Step is the resolution of the judge's range queries (default 5s).
	Step Duration `yaml:"step" json:"step"`
	// Retries is how many times a failed query is tried again before the
	// measurement is an error (default 2).
	Retries int `yaml:"retries" json:"retries"`
}

// Metric is one query judged at each analysis, on one of the sources.
type Metric struct {
	Name string `yaml:"name" json:"name"`
	// Source is where the query runs: prometheus (default), counters (the
	// router's per-slot counters, else the slots' metricsPath), probe (a
	// burst of requests to the slot), or web (an HTTP endpoint answering JSON).
	Source string `yaml:"source" json:"source,omitempty"`
	// Query is PromQL for prometheus; for counters and probe one of
	// requests, errors, error_rate, avg_response_ms (counters), p95_ms (probe).
	Query string `yaml:"query" json:"query"`
	// Web is the endpoint of a web metric.
	Web *Web     `yaml:"web" json:"web,omitempty"`
	Max *float64 `yaml:"max" json:"max,omitempty"`
	Min *float64 `yaml:"min" json:"min,omitempty"`
	// Compare judges the new slot against the live slot's value of the same query.
	Compare *Compare `yaml:"compare" json:"compare,omitempty"`
	// Judge compares the two slots' series over the step with a statistical test.
	Judge *Judge `yaml:"judge" json:"judge,omitempty"`
	// OnNoData: pass, fail or inconclusive (default): what a query that
	// returns no series, several series or NaN means.
	OnNoData string `yaml:"onNoData" json:"onNoData"`
	// FailureLimit is how many failed measurements a step tolerates (default 0).
	FailureLimit int `yaml:"failureLimit" json:"failureLimit"`
}

// Guard keeps judging a promoted version for a while after it reached
// 100 %, with the same analysis: a breach while the old slot is still warm
// (scaleDownDelay) rolls back to it at once; after that, the last
// known-good version is redeployed on a fast track (no steps, no bakes,
// its checks only).
type Guard struct {
	For Duration `yaml:"for" json:"for"`
	// Interval is how often it judges (default: the analysis interval, at least 5s).
	Interval Duration `yaml:"interval" json:"interval"`
	// Metrics judged (default: the analysis's metrics, or its error rate and maxP95).
	Metrics []Metric `yaml:"metrics" json:"metrics,omitempty"`
}

// Web is an HTTP endpoint answering JSON, like argo-rollouts' web provider.
type Web struct {
	// URL may use the query variables ({{slot}}, {{version}}, …), filled in URL-escaped.
	URL string `yaml:"url" json:"url"`
	// JSONPath finds the number in the answer, like {$.data.errorRate};
	// a list of numbers is a series, which a judge compares.
	JSONPath string `yaml:"jsonPath" json:"jsonPath"`
	// HeadersEnv maps a request header to the worker variable holding its value.
	HeadersEnv map[string]string `yaml:"headersEnv" json:"headersEnv,omitempty"`
	Timeout    Duration          `yaml:"timeout" json:"timeout"` // default 10s
}

// The sources a metric may name.
const (
	SourcePrometheus = "prometheus"
	SourceCounters   = "counters"
	SourceProbe      = "probe"
	SourceWeb        = "web"
	SourceMirror     = "mirror" // a mirror step's shadow traffic (targeting.go)
)

// CounterQueries are what the counters source answers; ProbeQueries a probe's.
var (
	CounterQueries = []string{"requests", "errors", "error_rate", "avg_response_ms"}
	ProbeQueries   = []string{"requests", "errors", "error_rate", "p95_ms"}
)

// Compare bounds the new slot's value by the live slot's.
type Compare struct {
	To          string   `yaml:"to" json:"to"` // baseline
	MaxIncrease *float64 `yaml:"maxIncrease" json:"maxIncrease,omitempty"`
	MaxDecrease *float64 `yaml:"maxDecrease" json:"maxDecrease,omitempty"`
}

// Judge is a statistical comparison of the two slots' series.
type Judge struct {
	Kind       string  `yaml:"kind" json:"kind"`             // mann-whitney
	Confidence float64 `yaml:"confidence" json:"confidence"` // default 0.98, Kayenta's
	Direction  string  `yaml:"direction" json:"direction"`   // increase, decrease, either (default)
	// AllowedIncrease / AllowedDecrease bound the ratio of the means
	// (canary/live) a significant change may reach before it fails
	// (default 1.0 both: any significant change in the judged direction).
	AllowedIncrease float64 `yaml:"allowedIncrease" json:"allowedIncrease"`
	AllowedDecrease float64 `yaml:"allowedDecrease" json:"allowedDecrease"`
}

// EarlyStop watches the router's counters during each step and rolls back
// as soon as a sequential test finds the new slot erring more than the live one.
type EarlyStop struct {
	Disabled bool `yaml:"disabled" json:"disabled"`
	// FalseAlarmRate bounds the chance of stopping a release as good as the
	// live one, per step (default 0.01).
	FalseAlarmRate float64 `yaml:"falseAlarmRate" json:"falseAlarmRate"`
	// Ratio is the error-rate ratio (new/live) the test is tuned to catch
	// (default 10); larger ratios are caught sooner, smaller ones later.
	Ratio float64 `yaml:"ratio" json:"ratio"`
	// MinErrorRate: a new slot erring less than this is never stopped early (default 0.01).
	MinErrorRate float64 `yaml:"minErrorRate" json:"minErrorRate"`
	// Poll is how often the counters are read (default 250ms).
	Poll Duration `yaml:"poll" json:"poll"`
}

// QueryVars are the template variables a query may use.
var QueryVars = []string{"service", "environment", "slot", "baseline_slot", "version", "interval"}

// QueryVarRe finds a query's {{variables}}.
var QueryVarRe = regexp.MustCompile(`\{\{\s*([a-zA-Z_]*)\s*\}\}`)

// defaultAnalysis fills in the Prometheus metrics and the early stop.
func (a *Analysis) defaultAnalysis() {
	if p := a.Prometheus; p != nil {
		if p.Step == 0 {
			p.Step = Duration(5 * time.Second)
		}
		if p.Retries == 0 {
			p.Retries = 2
		}
	}
	defaultMetrics(a.Metrics)
	e := &a.EarlyStop
	if e.FalseAlarmRate == 0 {
		e.FalseAlarmRate = 0.01
	}
	if e.Ratio == 0 {
		e.Ratio = 10
	}
	if e.MinErrorRate == 0 {
		e.MinErrorRate = 0.01
	}
	if e.Poll == 0 {
		e.Poll = Duration(250 * time.Millisecond)
	}
}

// defaultMetrics fills in each metric's source, onNoData and judge.
func defaultMetrics(ms []Metric) {
	for i := range ms {
		m := &ms[i]
		if m.Source == "" {
			m.Source = SourcePrometheus
			if m.Web != nil {
				m.Source = SourceWeb
			}
		}
		if m.Web != nil && m.Web.Timeout == 0 {
			m.Web.Timeout = Duration(10 * time.Second)
		}
		if m.OnNoData == "" {
			m.OnNoData = "inconclusive"
		}
		if j := m.Judge; j != nil {
			if j.Confidence == 0 {
				j.Confidence = 0.98
			}
			if j.Direction == "" {
				j.Direction = "either"
			}
			if j.AllowedIncrease == 0 {
				j.AllowedIncrease = 1
			}
			if j.AllowedDecrease == 0 {
				j.AllowedDecrease = 1
			}
		}
	}
}

// validateAnalysis checks the Prometheus metrics and the early stop.
func (a *Analysis) validateAnalysis(add adder) {
	const f = "rollout.analysis."
	if p := a.Prometheus; p != nil {
		if u, err := url.Parse(p.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(f+"prometheus.address", "must be an http(s) URL like http://127.0.0.1:9090 (got %q)", StripUserinfo(p.Address))
		} else if _, has := u.User.Password(); has {
			add(f+"prometheus.address", "holds a password, which would be kept in the workflow's history: put the credentials in headersEnv (Authorization: NAME_OF_A_WORKER_VARIABLE)")
		}
		for _, h := range slices.Sorted(maps.Keys(p.HeadersEnv)) {
			if env := p.HeadersEnv[h]; !envVarRe.MatchString(env) {
				add(f+"prometheus.headersEnv."+h, "must name an environment variable of the worker, not hold the header's value")
			}
		}
		if p.Step < Duration(time.Second) {
			add(f+"prometheus.step", "must be at least 1s (got %s)", p.Step)
		}
		if p.Retries < 0 || p.Retries > 10 {
			add(f+"prometheus.retries", "must be between 0 and 10 (got %d)", p.Retries)
		}
	}
	a.validateMetrics(add, f+"metrics", a.Metrics)
	a.EarlyStop.validate(add, f+"earlyStop.")
}

// GuardMetrics are what the guard judges: its own metrics, else the
// analysis's (either may be none: the error rate and maxP95 then).
func (r *Rollout) GuardMetrics() []Metric {
	if g := r.Guard; g != nil && len(g.Metrics) > 0 {
		return g.Metrics
	}
	return r.Analysis.Metrics
}

// defaultGuard fills in the guard's interval and its metrics' defaults.
func (r *Rollout) defaultGuard() {
	g := r.Guard
	if g == nil {
		return
	}
	if g.Interval == 0 {
		g.Interval = max(r.Analysis.Interval, Duration(5*time.Second))
	}
	defaultMetrics(g.Metrics)
}

// validateGuard checks the guard's window, interval and metrics.
func (r *Rollout) validateGuard(add adder) {
	g := r.Guard
	if g == nil {
		return
	}
	if g.For <= 0 || g.For > Duration(7*24*time.Hour) {
		add("rollout.guard.for", "must be between 1s and 7d, like 1h: how long the promoted version is judged (got %s)", g.For)
	}
	if g.Interval < Duration(time.Second) {
		add("rollout.guard.interval", "must be at least 1s (got %s)", g.Interval)
	} else if g.For > 0 && g.Interval > g.For {
		add("rollout.guard.interval", "%s is longer than the guard (%s): it would never judge", g.Interval, g.For)
	}
	r.Analysis.validateMetrics(add, "rollout.guard.metrics", g.Metrics)
}

// validateMetrics checks a list of metrics (the analysis's, the guard's).
func (a *Analysis) validateMetrics(add adder, field string, ms []Metric) {
	seen := map[string]bool{}
	for i, m := range ms {
		at := fmt.Sprintf("%s[%d].", field, i)
		switch {
		case m.Name == "":
			add(at+"name", "required")
		case seen[m.Name]:
			add(at+"name", "%q is used twice", m.Name)
		}
		seen[m.Name] = true
		a.validateSource(add, at, m)
		if m.Max == nil && m.Min == nil && m.Compare == nil && m.Judge == nil {
			add(at[:len(at)-1], "judges nothing: give max, min, compare or judge")
		}
		if m.Max != nil && m.Min != nil && *m.Min > *m.Max {
			add(at+"min", "is above max (%v > %v)", *m.Min, *m.Max)
		}
		if !slices.Contains([]string{"pass", "fail", "inconclusive"}, m.OnNoData) {
			add(at+"onNoData", "must be pass, fail or inconclusive (got %q)", m.OnNoData)
		}
		if m.FailureLimit < 0 {
			add(at+"failureLimit", "must not be negative")
		}
		if c := m.Compare; c != nil {
			if c.To != "baseline" {
				add(at+"compare.to", "must be baseline (the live slot; got %q)", c.To)
			}
			if c.MaxIncrease == nil && c.MaxDecrease == nil {
				add(at+"compare", "give maxIncrease and/or maxDecrease (in the query's unit)")
			}
			if (c.MaxIncrease != nil && *c.MaxIncrease < 0) || (c.MaxDecrease != nil && *c.MaxDecrease < 0) {
				add(at+"compare", "maxIncrease and maxDecrease must not be negative")
			}
		}
		if j := m.Judge; j != nil {
			if j.Kind != "mann-whitney" {
				add(at+"judge.kind", "must be mann-whitney (got %q)", j.Kind)
			}
			if j.Confidence <= 0.5 || j.Confidence >= 1 {
				add(at+"judge.confidence", "must be between 0.5 and 1, like 0.98 (got %v)", j.Confidence)
			}
			if !slices.Contains([]string{"increase", "decrease", "either"}, j.Direction) {
				add(at+"judge.direction", "must be increase, decrease or either (got %q)", j.Direction)
			}
			if j.AllowedIncrease < 1 {
				add(at+"judge.allowedIncrease", "is a ratio of means and must be at least 1, like 1.2 (got %v)", j.AllowedIncrease)
			}
			if j.AllowedDecrease > 1 || j.AllowedDecrease <= 0 {
				add(at+"judge.allowedDecrease", "is a ratio of means between 0 and 1, like 0.8 (got %v)", j.AllowedDecrease)
			}
		}
	}
}

// validateSource checks a metric's query against the source it runs on.
func (a *Analysis) validateSource(add adder, at string, m Metric) {
	vars := func(field, text string) {
		for _, v := range QueryVarRe.FindAllStringSubmatch(text, -1) {
			if !slices.Contains(QueryVars, v[1]) {
				add(at+field, "unknown variable {{%s}} (known: %s)", v[1], strings.Join(QueryVars, ", "))
			}
		}
	}
	oneOf := func(names []string) {
		if !slices.Contains(names, m.Query) {
			add(at+"query", "the %s source answers %s (got %q)", m.Source, strings.Join(names, ", "), m.Query)
		}
	}
	if m.Web != nil && m.Source != SourceWeb {
		add(at+"web", "is for source web (the source is %s)", m.Source)
	}
	switch m.Source {
	case SourcePrometheus:
		if a.Prometheus == nil {
			add(at+"source", "prometheus needs rollout.analysis.prometheus.address: the server the queries run on")
		}
		if strings.TrimSpace(m.Query) == "" {
			add(at+"query", "required: a PromQL expression")
		}
		vars("query", m.Query)
	case SourceCounters, SourceProbe:
		if m.Source == SourceCounters {
			oneOf(CounterQueries)
		} else {
			oneOf(ProbeQueries)
		}
		if m.Judge != nil {
			add(at+"judge", "needs a series over time, which the %s source does not keep: use max, min or compare (or a prometheus or web source)", m.Source)
		}
	case SourceWeb:
		w := m.Web
		if w == nil {
			add(at+"web", "required for source web: url and jsonPath")
			return
		}
		if m.Query != "" {
			add(at+"query", "is not used by source web: the number is found by web.jsonPath")
		}
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(at+"web.url", "must be an http(s) URL (got %q)", StripUserinfo(w.URL))
		} else if strings.Contains(u.Host, "{{") || strings.Contains(u.Host, "%7B") {
			add(at+"web.url", "may use variables in its path and query, not its host (%s): the hosts a worker reaches are fixed by its policy", u.Host)
		} else if u.User != nil {
			add(at+"web.url", "holds credentials, which would be kept in the workflow's history: put them in headersEnv")
		}
		vars("web.url", w.URL)
		if !strings.HasPrefix(strings.TrimSpace(w.JSONPath), "{") {
			add(at+"web.jsonPath", "must be a JSONPath in braces, like {$.data.value} (got %q)", w.JSONPath)
		}
		for _, h := range slices.Sorted(maps.Keys(w.HeadersEnv)) {
			if !envVarRe.MatchString(w.HeadersEnv[h]) {
				add(at+"web.headersEnv."+h, "must name an environment variable of the worker, not hold the header's value")
			}
		}
		if w.Timeout < Duration(100*time.Millisecond) || w.Timeout > Duration(time.Minute) {
			add(at+"web.timeout", "must be between 100ms and 1m (got %s)", w.Timeout)
		}
	default:
		add(at+"source", "must be prometheus, counters, probe or web (got %q)", m.Source)
	}
}

// validate checks the early stop's settings.
func (e EarlyStop) validate(add adder, f string) {
	if e.FalseAlarmRate <= 0 || e.FalseAlarmRate > 0.2 {
		add(f+"falseAlarmRate", "must be above 0 and at most 0.2, like 0.01 (got %v)", e.FalseAlarmRate)
	}
	if e.Ratio <= 1 {
		add(f+"ratio", "must be above 1: the error-rate ratio (new/live) to catch (got %v)", e.Ratio)
	}
	checkRate(add, f+"minErrorRate", e.MinErrorRate)
	if e.Poll < Duration(50*time.Millisecond) {
		add(f+"poll", "must be at least 50ms (got %s)", e.Poll)
	}
}
