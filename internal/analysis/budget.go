package analysis

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

// BurnRule is one of the SRE workbook's multiwindow burn-rate alerts: the
// budget burns fast when both windows burn faster than Factor.
type BurnRule struct {
	Long, Short time.Duration
	Factor      float64
}

// FastBurn are the workbook's two paging rules (chapter 5, table 5-8):
// 2 % of a 30-day budget in an hour, 5 % in six.
var FastBurn = []BurnRule{{time.Hour, 5 * time.Minute, 14.4}, {6 * time.Hour, 30 * time.Minute, 6}}

// WindowBurn is the burn rate over one window: the error ratio over it
// divided by the budget (1 − objective); 1 spends the budget exactly by
// the period's end.
type WindowBurn struct {
	Window string  `json:"window"`
	Burn   float64 `json:"burn"`
}

// Budget is an SLO's error budget as read before a rollout.
type Budget struct {
	SLO       string       `json:"slo"`
	Objective float64      `json:"objective"`
	Burns     []WindowBurn `json:"burns"`
	// Remaining is the share of the period's budget left (negative: overspent).
	Remaining float64 `json:"remaining"`
	// FastBurn says a rule fires, and Why which.
	FastBurn bool   `json:"fastBurn"`
	Why      string `json:"why,omitempty"`
	// Error is why the budget could not be read (the rollout goes on).
	Error string `json:"error,omitempty"`
}

// ReadBudget reads an SLO's burn rates over the rules' windows and its
// remaining budget over the period, on Prometheus, at now.
func ReadBudget(ctx context.Context, p *Prometheus, o spec.SLO, service, env string, now time.Time) Budget {
	b := Budget{SLO: o.Name, Objective: o.Objective}
	ratio := func(w time.Duration) (float64, error) {
		fill := func(q string) string {
			q = strings.NewReplacer("{{window}}", window(w), "{{ window }}", window(w)).Replace(q)
			return Render(q, Vars{Service: service, Environment: env}, false)
		}
		q := fmt.Sprintf("1 - ((%s) / (%s))", fill(o.Good), fill(o.Total))
		v, why, err := p.Value(ctx, Query{Text: q, At: now})
		if err != nil {
			return 0, err
		}
		if why != "" {
			return 0, nil // no events in the window: nothing spent
		}
		return v, nil
	}
	budget := 1 - o.Objective
	burns := map[time.Duration]float64{}
	for _, r := range FastBurn {
		for _, w := range []time.Duration{r.Long, r.Short} {
			if _, done := burns[w]; done {
				continue
			}
			v, err := ratio(w)
			if err != nil {
				b.Error = err.Error()
				return b
			}
			burns[w] = v / budget
			b.Burns = append(b.Burns, WindowBurn{Window: window(w), Burn: burns[w]})
		}
	}
	for _, r := range FastBurn {
		if burns[r.Long] > r.Factor && burns[r.Short] > r.Factor {
			b.FastBurn = true
			b.Why = fmt.Sprintf("%s burns %.1f× and %s %.1f×, both over %.1f×", window(r.Long), burns[r.Long], window(r.Short), burns[r.Short], r.Factor)
			break
		}
	}
	spent, err := ratio(o.Period.D())
	if err != nil {
		b.Error = err.Error()
		return b
	}
	b.Remaining = 1 - spent/budget
	return b
}

func (b Budget) String() string {
	if b.Error != "" {
		return b.SLO + ": unread (" + b.Error + ")"
	}
	var ws []string
	for _, w := range b.Burns {
		ws = append(ws, fmt.Sprintf("%s %.2f×", w.Window, w.Burn))
	}
	s := fmt.Sprintf("%s (objective %g): %.1f%% of the budget left; burn %s", b.SLO, b.Objective, 100*b.Remaining, strings.Join(ws, ", "))
	if b.FastBurn {
		s += "; burning fast: " + b.Why
	}
	return s
}

// window writes a range as people and PromQL both read it: 30d, 6h, 5m.
func window(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return promDuration(d)
}
