package spec

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// SLO is a service level objective over good and total events, as two
// PromQL queries on the rollout's Prometheus. While it burns its error
// budget fast (the SRE workbook's multiwindow rules: 1h and 5m both over
// 14.4×, or 6h and 30m both over 6×), new rollouts of the service are held;
// --emergency --reason goes through, recorded.
type SLO struct {
	Name string `yaml:"name" json:"name"`
	// Good and Total count events over {{window}} (a PromQL range such as
	// 5m), like sum(rate(http_requests_total{service="api",code!~"5.."}[{{window}}])).
	Good  string `yaml:"good" json:"good"`
	Total string `yaml:"total" json:"total"`
	// Objective is the share of good events promised, like 0.999.
	Objective float64 `yaml:"objective" json:"objective"`
	// Period is the budget's period (default 30d, written 720h).
	Period Duration `yaml:"period" json:"period"`
	// SlowBakesBelow: while less than this share of the period's budget
	// remains, bakes take SlowBakesBy times longer (default 0: never; 2×).
	SlowBakesBelow float64 `yaml:"slowBakesBelow" json:"slowBakesBelow,omitempty"`
	SlowBakesBy    float64 `yaml:"slowBakesBy" json:"slowBakesBy,omitempty"`
}

// SLOVars are the variables an SLO's queries may use.
var SLOVars = []string{"window", "service", "environment"}

func (s *Service) defaultSLOs() {
	for i := range s.SLOs {
		o := &s.SLOs[i]
		if o.Period == 0 {
			o.Period = Duration(30 * 24 * time.Hour)
		}
		if o.SlowBakesBy == 0 {
			o.SlowBakesBy = 2
		}
	}
}

func (s *Service) validateSLOs(add adder) {
	if len(s.SLOs) > 0 && s.Rollout.Analysis.Prometheus == nil {
		add("slos", "need rollout.analysis.prometheus.address: the server the SLO queries run on")
	}
	seen := map[string]bool{}
	for i, o := range s.SLOs {
		at := fmt.Sprintf("slos[%d].", i)
		switch {
		case o.Name == "":
			add(at+"name", "required")
		case seen[o.Name]:
			add(at+"name", "%q is used twice", o.Name)
		}
		seen[o.Name] = true
		for _, q := range []struct{ field, text string }{{"good", o.Good}, {"total", o.Total}} {
			if !strings.Contains(q.text, "{{window}}") && !strings.Contains(q.text, "{{ window }}") {
				add(at+q.field, "must use {{window}} as its range, like rate(x[{{window}}]): the burn rate is read over several windows")
			}
			for _, v := range QueryVarRe.FindAllStringSubmatch(q.text, -1) {
				if !slices.Contains(SLOVars, v[1]) {
					add(at+q.field, "unknown variable {{%s}} (known: %s)", v[1], strings.Join(SLOVars, ", "))
				}
			}
		}
		if o.Objective <= 0.5 || o.Objective >= 1 {
			add(at+"objective", "must be between 0.5 and 1, like 0.999 (got %v)", o.Objective)
		}
		if o.Period < Duration(time.Hour) {
			add(at+"period", "must be at least 1h, like 720h for 30 days (got %s)", o.Period)
		}
		if o.SlowBakesBelow < 0 || o.SlowBakesBelow > 1 {
			add(at+"slowBakesBelow", "is a share of the budget between 0 and 1 (got %v)", o.SlowBakesBelow)
		}
		if o.SlowBakesBy < 1 || o.SlowBakesBy > 10 {
			add(at+"slowBakesBy", "must be between 1 and 10 (got %v)", o.SlowBakesBy)
		}
	}
}
