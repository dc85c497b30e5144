package analysis

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

func ptr(f float64) *float64 { return &f }

var vars = Vars{Service: "shop", Environment: "prod", Slot: rollout.Green, BaselineSlot: rollout.Blue, Version: "v2", LiveVersion: "v1", Interval: time.Minute}

// The same metric, asked of three sources holding the same traffic (the
// new slot 30 errors in 1,000 requests, the live slot 2 in 1,000), gets the
// same value, the same decision and the same explanation's shape.
func TestEverySourceGivesTheSameMeasurementForTheSameTraffic(t *testing.T) {
	counters := &Counters{Source: "haproxy-stats",
		Base: map[rollout.Slot]rollout.Counters{rollout.Green: {Requests: 500, Errors: 10}, rollout.Blue: {Requests: 100}},
		Now:  map[rollout.Slot]rollout.Counters{rollout.Green: {Requests: 1500, Errors: 40}, rollout.Blue: {Requests: 1100, Errors: 2}}}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rate := map[string]string{"green": "0.03", "blue": "0.002"}[r.URL.Query().Get("slot")]
		fmt.Fprintf(w, `{"data": {"service": %q, "errorRate": %s}}`, r.URL.Query().Get("service"), rate)
	}))
	defer web.Close()
	ws, err := NewWeb(&spec.Web{URL: web.URL + "/stats?slot={{slot}}&service={{service}}", JSONPath: "{$.data.errorRate}", Timeout: spec.Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	base := spec.Metric{Name: "errors", Query: QErrorRate, Max: ptr(0.01), OnNoData: "inconclusive"}
	withCompare := base
	withCompare.Max, withCompare.Compare = nil, &spec.Compare{To: "baseline", MaxIncrease: ptr(0.01)}
	for _, m := range []spec.Metric{base, withCompare} {
		var got []rollout.Measurement
		for _, src := range []Source{counters, ws} {
			mm := m
			if src == ws {
				mm.Query, mm.Web = "", &spec.Web{URL: web.URL + "/stats?slot={{slot}}&service={{service}}", JSONPath: "{$.data.errorRate}"}
			}
			got = append(got, Measure(context.Background(), src, mm, vars, Window{End: time.Now()}))
		}
		for i, g := range got {
			if g.Decision != rollout.Fail || g.Value == nil || *g.Value != 0.03 || g.Limit == nil {
				t.Fatalf("source %d (%s): %+v; want fail at 0.03 with a limit", i, g.Source, g)
			}
			if m.Compare != nil && (g.Baseline == nil || *g.Baseline != 0.002) {
				t.Fatalf("source %s: live value %v, want 0.002", g.Source, g.Baseline)
			}
			if g.Reason != got[0].Reason {
				t.Fatalf("%s explains %q, %s %q: the same traffic, the same reason", g.Source, g.Reason, got[0].Source, got[0].Reason)
			}
		}
		if got[0].Source != "haproxy-stats" || got[1].Source != "web" {
			t.Fatalf("sources named %q, %q", got[0].Source, got[1].Source)
		}
		if !strings.Contains(got[1].Query, "slot=green&service=shop") || (m.Compare != nil && !strings.Contains(got[1].BaselineQuery, "slot=blue")) {
			t.Fatalf("web queries as sent: %q / %q", got[1].Query, got[1].BaselineQuery)
		}
	}
}

// A step with no traffic is no data, which the metric's onNoData decides;
// a counter source cannot feed a judge and says so.
func TestCountersSayWhenTheyHaveNothingToJudge(t *testing.T) {
	c := &Counters{Source: "metrics",
		Base: map[rollout.Slot]rollout.Counters{rollout.Green: {Requests: 7}},
		Now:  map[rollout.Slot]rollout.Counters{rollout.Green: {Requests: 7}}}
	m := spec.Metric{Name: "errors", Query: QErrorRate, Max: ptr(0.01), OnNoData: "pass"}
	if got := Measure(context.Background(), c, m, vars, Window{}); got.Decision != rollout.Pass || !strings.Contains(got.Reason, "no requests reached slot green") {
		t.Fatalf("a quiet step: %+v", got)
	}
	m.OnNoData = "inconclusive"
	if got := Measure(context.Background(), c, m, vars, Window{}); got.Decision != rollout.Inconclusive {
		t.Fatalf("a quiet step, onNoData inconclusive: %+v", got)
	}
	m.Query = QAvgResponseMs
	if got := Measure(context.Background(), c, m, vars, Window{}); got.Decision != rollout.Error || !strings.Contains(got.Reason, "counts requests, not response times") {
		t.Fatalf("avg_response_ms from metricsPath: %+v", got)
	}
	m.Query, m.Judge = QErrorRate, &spec.Judge{Kind: "mann-whitney", Confidence: 0.98, Direction: "either", AllowedIncrease: 1, AllowedDecrease: 1}
	if got := Measure(context.Background(), c, m, vars, Window{}); got.Decision != rollout.Inconclusive || !strings.Contains(got.Reason, "keeps no series") {
		t.Fatalf("a judge on counters: %+v", got)
	}
	// counters that went backwards (a router restart) count from zero
	c.Now[rollout.Green] = rollout.Counters{Requests: 4, Errors: 2}
	m.Judge = nil
	if got := Measure(context.Background(), c, m, vars, Window{}); got.Decision != rollout.Fail || *got.Value != 0.5 {
		t.Fatalf("after a restart: %+v", got)
	}
}

// A web source's list of numbers is a series a judge compares; a value
// that is not a number is an error naming the path, not a pass.
func TestWebSourceFeedsAJudgeAndRefusesWhatIsNotANumber(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("slot") {
		case "green":
			fmt.Fprint(w, `{"latency": [210, 220, 215, 230, 225, 219, 228, 221]}`)
		case "blue":
			fmt.Fprint(w, `{"latency": ["100", "101", "99", "102", "98", "100", "103", "97"]}`)
		default:
			fmt.Fprint(w, `{"latency": "fast"}`)
		}
	}))
	defer web.Close()
	w := &spec.Web{URL: web.URL + "/?slot={{slot}}", JSONPath: "{$.latency}", Timeout: spec.Duration(time.Second)}
	src, err := NewWeb(w)
	if err != nil {
		t.Fatal(err)
	}
	m := spec.Metric{Name: "latency", Source: spec.SourceWeb, Web: w, OnNoData: "inconclusive",
		Judge: &spec.Judge{Kind: "mann-whitney", Confidence: 0.98, Direction: "either", AllowedIncrease: 1, AllowedDecrease: 1}}
	got := Measure(context.Background(), src, m, vars, Window{})
	if got.Decision != rollout.Fail || !strings.Contains(got.Reason, "significantly higher") || got.Points[0] != 8 {
		t.Fatalf("judge on web series: %+v", got)
	}
	v := vars
	v.Slot = "other"
	m.Judge, m.Max = nil, ptr(1)
	if got := Measure(context.Background(), src, m, v, Window{}); got.Decision != rollout.Error || !strings.Contains(got.Reason, `{$.latency} found "fast", not a number`) {
		t.Fatalf("a string that is no number: %+v", got)
	}
	if _, err := NewWeb(&spec.Web{URL: web.URL, JSONPath: "{$.x}", HeadersEnv: map[string]string{"Authorization": "SWITCHYARD_TEST_UNSET_VAR"}}); err == nil || !strings.Contains(err.Error(), "SWITCHYARD_TEST_UNSET_VAR") {
		t.Fatalf("a missing header variable: %v", err)
	}
}

// A probe is sent once per slot however many metrics read it.
func TestProbeSendsOneBurstPerSlotPerAnalysis(t *testing.T) {
	var hits atomic.Int64
	slot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1)%4 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer slot.Close()
	p := &Probe{N: 20, URL: func(rollout.Slot) string { return slot.URL }}
	rate := Measure(context.Background(), p, spec.Metric{Name: "error-rate", Query: QErrorRate, Max: ptr(0.1)}, vars, Window{})
	lat := Measure(context.Background(), p, spec.Metric{Name: "p95", Query: QP95Ms, Max: ptr(5000)}, vars, Window{})
	if rate.Decision != rollout.Fail || *rate.Value != 0.25 || lat.Decision != rollout.Pass || rate.Source != "probe" {
		t.Fatalf("probe: %+v / %+v", rate, lat)
	}
	if hits.Load() != 20 {
		t.Fatalf("%d requests for two metrics of one slot, want one burst of 20", hits.Load())
	}
}
