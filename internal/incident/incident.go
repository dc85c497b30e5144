// Package incident is the pure bookkeeping of monitoring: which checks are
// failing, which incidents are open, and what to tell the alert channels.
// No I/O, so workflow code may use it.
package incident

import (
	"fmt"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
)

// Action is what happens to an incident.
type Action string

// The three actions of an incident's life, and an event that is no incident.
const (
	Open    Action = "open"
	Update  Action = "update"
	Resolve Action = "resolve"
	Event   Action = "event" // a deployment or rollback event
)

// Ref is what one channel needs to find an incident again (a GitHub issue number).
type Ref struct {
	Channel string `json:"channel"`
	Ref     string `json:"ref"`
}

// Incident is one problem: a check failing on a service in an environment.
type Incident struct {
	Key         string    `json:"key"` // service/environment/check: the dedup key
	Service     string    `json:"service"`
	Environment string    `json:"environment"`
	Check       string    `json:"check"`
	Critical    bool      `json:"critical"`
	Summary     string    `json:"summary"`
	Detail      string    `json:"detail"`
	OpenedAt    time.Time `json:"openedAt"`
	Updates     int       `json:"updates"`
	Refs        []Ref     `json:"refs,omitempty"`
}

// Title is the one line a channel shows.
func (i Incident) Title() string {
	return fmt.Sprintf("[%s/%s] %s failing: %s", i.Service, i.Environment, i.Check, i.Summary)
}

// RefFor returns the channel's ref for this incident.
func (i Incident) RefFor(channel string) string {
	for _, r := range i.Refs {
		if r.Channel == channel {
			return r.Ref
		}
	}
	return ""
}

// State is what a Monitor run leaves for the next: its result, read back by
// the next run, so incidents live in Temporal and survive any worker.
type State struct {
	Service     string                            `json:"service"`
	Environment string                            `json:"environment"`
	RanAt       time.Time                         `json:"ranAt"`
	Results     []rollout.CheckResult             `json:"results"`
	Incidents   []Incident                        `json:"incidents"`
	Counters    map[rollout.Slot]rollout.Counters `json:"counters,omitempty"`
	Notices     []Notice                          `json:"notices,omitempty"`
	// Delivery says, per notice and channel, what happened.
	Delivery []string `json:"delivery,omitempty"`
	Rollback string   `json:"rollback,omitempty"`
}

// Notice is one thing to tell the channels.
type Notice struct {
	Action   Action   `json:"action"`
	Incident Incident `json:"incident"`
}

// ChannelName names the i-th alert channel of a spec, for refs and metrics.
func ChannelName(kind string, i int) string { return fmt.Sprintf("%s#%d", kind, i) }

// Key is the dedup key of a check on a service in an environment.
func Key(service, env, check string) string { return service + "/" + env + "/" + check }

// Reconcile turns this run's check results into the incidents that are open
// after it and the notices to send: a failing check opens one incident, or
// updates the one already open; the first passing run resolves it. Order
// follows the inputs, so it is deterministic.
func Reconcile(open []Incident, results []rollout.CheckResult, service, env string, now time.Time) ([]Incident, []Notice) {
	var next []Incident
	var notices []Notice
	seen := map[string]bool{}
	for _, r := range results {
		key := Key(service, env, r.Name)
		if seen[key] {
			continue
		}
		seen[key] = true
		idx := -1
		for i := range open {
			if open[i].Key == key {
				idx = i
			}
		}
		switch {
		case !r.Passed && idx < 0:
			in := Incident{Key: key, Service: service, Environment: env, Check: r.Name, Critical: r.Critical,
				Summary: r.Detail, Detail: r.Detail, OpenedAt: now}
			next = append(next, in)
			notices = append(notices, Notice{Open, in})
		case !r.Passed:
			in := open[idx]
			in.Updates++
			in.Summary, in.Detail = r.Detail, r.Detail
			next = append(next, in)
			notices = append(notices, Notice{Update, in})
		case idx >= 0:
			notices = append(notices, Notice{Resolve, open[idx]})
		}
	}
	// an open incident whose check did not run this time stays open
	for _, in := range open {
		if !seen[in.Key] {
			next = append(next, in)
		}
	}
	return next, notices
}
