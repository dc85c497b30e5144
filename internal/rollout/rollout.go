// Package rollout holds the domain types that workflows, activities and the
// CLI share: slots, traffic weights, phases and check results.
package rollout

import (
	"errors"
	"fmt"
	"time"
)

// Slot is one of a service's two environments.
type Slot string

// The two slots.
const (
	Blue  Slot = "blue"
	Green Slot = "green"
	// None is the live slot of a service that was never deployed.
	None Slot = ""
)

// Other returns the other slot.
func (s Slot) Other() Slot {
	if s == Blue {
		return Green
	}
	return Blue
}

// Weights is the share of traffic, in percent, each slot gets. They are
// always set whole ("green = 25"), never changed by a delta.
type Weights struct {
	Blue  int `json:"blue"`
	Green int `json:"green"`
}

// Of returns the weight of a slot.
func (w Weights) Of(s Slot) int {
	if s == Blue {
		return w.Blue
	}
	return w.Green
}

// Split returns weights that give the slot pct % and the other the rest.
func Split(s Slot, pct int) Weights {
	if s == Blue {
		return Weights{Blue: pct, Green: 100 - pct}
	}
	return Weights{Blue: 100 - pct, Green: pct}
}

// Live returns the slot that takes all or most traffic, or None when neither does.
func (w Weights) Live() Slot {
	switch {
	case w.Blue == 0 && w.Green == 0:
		return None
	case w.Blue >= w.Green:
		return Blue
	default:
		return Green
	}
}

func (w Weights) String() string { return fmt.Sprintf("blue=%d%% green=%d%%", w.Blue, w.Green) }

// Phase is where a rollout stands.
type Phase string

// The phases of a Deployment, in order, then its three ends.
const (
	PhaseValidating   Phase = "validating"
	PhaseWaiting      Phase = "waiting-for-window" // outside the spec's allowed windows
	PhaseBuilding     Phase = "building"
	PhaseGating       Phase = "gating" // pre-deployment gates on the artifact
	PhaseProvisioning Phase = "provisioning"
	PhaseMigrating    Phase = "migrating" // the schema's expand (before verifying) or contract (after retiring)
	PhaseVerifying    Phase = "verifying"
	PhaseShifting     Phase = "shifting"
	PhaseScalingDown  Phase = "scaling-down" // promoted; old slot kept warm
	PhaseRetiring     Phase = "retiring"
	PhaseRollingBack  Phase = "rolling-back" // a Rollback workflow at work
	PhasePromoted     Phase = "promoted"
	PhaseRolledBack   Phase = "rolled-back"
	PhaseFailed       Phase = "failed"
)

// Done says whether the phase is an end.
func (p Phase) Done() bool {
	return p == PhasePromoted || p == PhaseRolledBack || p == PhaseFailed
}

// CheckResult is the outcome of one check on one slot.
type CheckResult struct {
	Name   string `json:"name"` // health, smoke:GET /, performance, analysis
	Slot   Slot   `json:"slot"`
	Passed bool   `json:"passed"`
	// Critical marks a monitoring check whose failure may trigger a rollback.
	Critical bool      `json:"critical,omitempty"`
	Detail   string    `json:"detail"`
	At       time.Time `json:"at"`
	// Source says where analysis figures came from: haproxy-stats, metrics, probe, prometheus.
	Source string `json:"source,omitempty"`
	// Inconclusive: the analysis could not decide (no data, Prometheus
	// unreachable); the rollout pauses for a person to resume or abort.
	Inconclusive bool `json:"inconclusive,omitempty"`
	// Measurements are the analysis's figures, one per metric.
	Measurements []Measurement `json:"measurements,omitempty"`
	// Counters are the per-slot counters a guard's analysis read: the
	// baseline of its next one.
	Counters map[Slot]Counters `json:"counters,omitempty"`
}

// The decisions a measurement can reach.
const (
	Pass         = "pass"
	Fail         = "fail"
	Inconclusive = "inconclusive"
	Error        = "error" // the measurement could not be taken
)

// Measurement is one metric judged once: what was asked, what came back,
// against what, and what was decided, so every decision can be explained.
type Measurement struct {
	Metric string `json:"metric"`
	// Source is where the figures came from: prometheus, haproxy-stats, metrics, probe, web.
	Source string `json:"source,omitempty"`
	// Query and BaselineQuery are the queries as sent.
	Query         string   `json:"query,omitempty"`
	BaselineQuery string   `json:"baselineQuery,omitempty"`
	Value         *float64 `json:"value,omitempty"`    // the new slot's (a judge: its series' median)
	Baseline      *float64 `json:"baseline,omitempty"` // the live slot's
	// Points are the series' lengths a judge compared (new, live).
	Points    []int  `json:"points,omitempty"`
	Threshold string `json:"threshold"` // what the value was held to
	// Limit is the number the value had to stay under (or, for a minimum,
	// above), when there was one: drawn on the dashboard's charts.
	Limit    *float64 `json:"limit,omitempty"`
	Decision string   `json:"decision"`
	Reason   string   `json:"reason"`
}

func (m Measurement) String() string {
	s := m.Metric + ": " + m.Decision
	if m.Value != nil {
		s += fmt.Sprintf(" (value %.4g", *m.Value)
		if m.Baseline != nil {
			s += fmt.Sprintf(", live %.4g", *m.Baseline)
		}
		s += ")"
	}
	if m.Reason != "" {
		s += ": " + m.Reason
	}
	return s
}

// IsPermanent says whether an adapter's error is one no retry can fix:
// input the adapter cannot use, a permission refused. Adapters' error types
// say so themselves, with a Permanent method, so activities need to know
// none of them.
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// PermanentError is an adapter error no retry can fix, for adapters with
// no error type of their own.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string   { return e.Err.Error() }
func (e *PermanentError) Unwrap() error   { return e.Err }
func (e *PermanentError) Permanent() bool { return true }

// Counters are cumulative per-slot request counters read from the router or
// the slot itself; analysis works on the difference of two readings.
type Counters struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"` // 5xx answers and failed connections
	// AvgResponseMs is the router's running average response time, if it has one.
	AvgResponseMs int64 `json:"avgResponseMs"`
}

// Instance is what runs in a slot, as its platform reports it.
type Instance struct {
	Slot    Slot   `json:"slot"`
	Running bool   `json:"running"`
	Version string `json:"version"`
	Addr    string `json:"addr"` // host:port the slot serves on (its first replica's)
	PID     int    `json:"pid,omitempty"`
	// Artifact is what runs: an image digest on docker, empty for processes.
	Artifact string `json:"artifact,omitempty"`
	// Containers are the slot's container IDs on docker, one per replica.
	Containers []string `json:"containers,omitempty"`
	// Reattached is true when Provision found the version already running.
	Reattached bool `json:"reattached,omitempty"`
	// Summary is the platform's one-line description of what runs ("pid
	// 4242", "2 container(s)"), for the rollout's events.
	Summary string `json:"summary,omitempty"`
}
