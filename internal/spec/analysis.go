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

// Metric is one Prometheus query judged at each analysis.
type Metric struct {
	Name  string   `yaml:"name" json:"name"`
	Query string   `yaml:"query" json:"query"`
	Max   *float64 `yaml:"max" json:"max,omitempty"`
	Min   *float64 `yaml:"min" json:"min,omitempty"`
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
	for i := range a.Metrics {
		m := &a.Metrics[i]
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
	if len(a.Metrics) > 0 && a.Prometheus == nil {
		add(f+"metrics", "need rollout.analysis.prometheus.address: the server the queries run on")
	}
	seen := map[string]bool{}
	for i, m := range a.Metrics {
		at := fmt.Sprintf("%smetrics[%d].", f, i)
		switch {
		case m.Name == "":
			add(at+"name", "required")
		case seen[m.Name]:
			add(at+"name", "%q is used twice", m.Name)
		}
		seen[m.Name] = true
		if strings.TrimSpace(m.Query) == "" {
			add(at+"query", "required: a PromQL expression")
		}
		for _, v := range QueryVarRe.FindAllStringSubmatch(m.Query, -1) {
			if !slices.Contains(QueryVars, v[1]) {
				add(at+"query", "unknown variable {{%s}} (known: %s)", v[1], strings.Join(QueryVars, ", "))
			}
		}
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
	e := a.EarlyStop
	if e.FalseAlarmRate <= 0 || e.FalseAlarmRate > 0.2 {
		add(f+"earlyStop.falseAlarmRate", "must be above 0 and at most 0.2, like 0.01 (got %v)", e.FalseAlarmRate)
	}
	if e.Ratio <= 1 {
		add(f+"earlyStop.ratio", "must be above 1: the error-rate ratio (new/live) to catch (got %v)", e.Ratio)
	}
	checkRate(add, f+"earlyStop.minErrorRate", e.MinErrorRate)
	if e.Poll < Duration(50*time.Millisecond) {
		add(f+"earlyStop.poll", "must be at least 50ms (got %s)", e.Poll)
	}
}
