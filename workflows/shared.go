// Package workflows holds Switchyard's deterministic workflow code: no I/O,
// no wall clock, no goroutines, no map iteration. Side effects live in the
// activities package.
package workflows

import (
	"errors"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/internal/incident"
	"github.com/switchyard/switchyard/internal/schema"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// DeploymentInput starts a rollout.
type DeploymentInput struct {
	Spec    spec.Service `json:"spec"`
	Version string       `json:"version"`
	// By says who or what asked (user@host, CI job), for the events.
	By string `json:"by,omitempty"`
	// Release names the release this rollout is part of, if any.
	Release string `json:"release,omitempty"`
	// Hold keeps the old slot warm after promotion, whatever the scale-down
	// delay, until the parent release signals ReleaseDone (retire it) or
	// Abort (roll back at once): a release undoes a whole environment.
	Hold bool `json:"hold,omitempty"`
	// Emergency, when set, is why this rollout goes through a freeze.
	Emergency string `json:"emergency,omitempty"`
	// CommitTime is when the version's commit was made, if the caller knows
	// (deploy --commit-time): the start of its lead time.
	CommitTime time.Time `json:"commitTime,omitzero"`
	// ForceSchema goes back to a version a contract migration broke, with
	// no down migration to undo it (deploy --force).
	ForceSchema bool `json:"forceSchema,omitempty"`
	// Continued is set on a run that a long bake continued as new: where
	// the rollout picks up.
	Continued *Continued `json:"continued,omitempty"`
	// AnalysesPerRun, when set, continues the run as new after that many
	// analyses (default 1,000; tests use a few).
	AnalysesPerRun int `json:"analysesPerRun,omitempty"`
}

// Continued is where a rollout continued as new picks up: in the bake of
// its current step, with the traffic where the last run left it.
type Continued struct {
	Status    Status                 `json:"status"`
	Fails     map[string]int         `json:"fails,omitempty"`
	StepSince time.Time              `json:"stepSince"`
	Remaining time.Duration          `json:"remaining"` // of the step's bake
	Base      activities.ShiftResult `json:"base"`
	// Runs counts the runs before this one.
	Runs int `json:"runs"`
}

// ServicePromoted is what a held rollout tells its release once its new
// version has all the traffic (signal ServicePromotedSignal).
type ServicePromoted struct {
	Service         string `json:"service"`
	Environment     string `json:"environment"`
	Version         string `json:"version"`
	PreviousVersion string `json:"previousVersion,omitempty"`
	// First is true when there was no previous version: nothing to go back to.
	First bool `json:"first,omitempty"`
}

// AbortRequest asks to roll back.
type AbortRequest struct {
	Reason string `json:"reason"`
	By     string `json:"by,omitempty"`
	// Handoff stops the rollout without touching the router, for a Rollback
	// workflow that takes over: one writer per service at any time.
	Handoff bool `json:"handoff,omitempty"`
}

// ControlRequest says who paused or resumed a rollout, and why.
type ControlRequest struct {
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// said is the request as an event's tail: " by X: why".
func (r ControlRequest) said() string {
	s := ""
	if r.By != "" {
		s = " by " + r.By
	}
	if r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}

// PromoteRequest skips ahead.
type PromoteRequest struct {
	// Full goes to 100 % at once; otherwise only the current bake is skipped.
	Full bool   `json:"full"`
	By   string `json:"by,omitempty"`
}

// Event is one line of a rollout's story.
type Event struct {
	At      time.Time `json:"at"`
	Message string    `json:"message"`
}

// Status is what the status Query returns, and the workflow's result.
type Status struct {
	Service         string `json:"service"`
	Environment     string `json:"environment"`
	Version         string `json:"version"`
	PreviousVersion string `json:"previousVersion,omitempty"`
	// Release names the release this rollout is part of, if any.
	Release string `json:"release,omitempty"`
	// RequestedBy is who asked, as the request said ("guard (…)" for a
	// guard's fast-track restore); CommitTime is the version's commit time.
	RequestedBy string    `json:"requestedBy,omitempty"`
	CommitTime  time.Time `json:"commitTime,omitzero"`
	// StartedBy is who the Temporal server verified started the rollout
	// ("jwt:ci@example.com"), when it runs with an authorizer.
	StartedBy string `json:"startedBy,omitempty"`
	// Artifact is what was built, checked and runs: an image digest on docker.
	Artifact string          `json:"artifact,omitempty"`
	Phase    rollout.Phase   `json:"phase"`
	Paused   bool            `json:"paused"`
	Target   rollout.Slot    `json:"target"`
	Stable   rollout.Slot    `json:"stable"`
	Steps    []int           `json:"steps"`
	Step     int             `json:"step"` // index into Steps; -1 before the first shift
	Weights  rollout.Weights `json:"weights"`
	// Timeline is every change of the router's weights the rollout made or found.
	Timeline       []WeightChange        `json:"timeline,omitempty"`
	Checks         []rollout.CheckResult `json:"checks,omitempty"`
	AnalysisSource string                `json:"analysisSource,omitempty"`
	Reason         string                `json:"reason,omitempty"`
	StartedAt      time.Time             `json:"startedAt"`
	UpdatedAt      time.Time             `json:"updatedAt"`
	BakeEndsAt     time.Time             `json:"bakeEndsAt,omitempty"`
	// WaitingUntil is when the allowed window the rollout waits for opens.
	WaitingUntil time.Time `json:"waitingUntil,omitempty"`
	// Events are the last MaxEvents of the rollout (the rest are in its
	// history); EventsDropped counts those left out before them, so a
	// reader that printed N events in all knows where to go on.
	Events        []Event `json:"events"`
	EventsDropped int     `json:"eventsDropped,omitempty"`
	// Measurements are the analysis's measurements, oldest first (the last maxMeasurements).
	Measurements []Measured `json:"measurements,omitempty"`
	// Rollback reports the rollout's own rollback, if it rolled back.
	Rollback *RollbackReport `json:"rollback,omitempty"`
	// Guard is the post-promotion guard, once the version reached 100 % (guard.go).
	Guard *GuardState `json:"guard,omitempty"`
	// Budgets are the SLOs' error budgets as read before the rollout (phases.go).
	Budgets []analysis.Budget `json:"budgets,omitempty"`
	// Routes are the targeting routes in force (who reaches the new version
	// besides the weights), nil when by weight only.
	Routes *rollout.Routes `json:"routes,omitempty"`
	// Schema is each migration phase the rollout ran, and when (schema.go).
	Schema []schema.Step `json:"schema,omitempty"`
	// ContractAt is when this version's own contract is due (a delay after
	// promotion), while the rollout waits for it.
	ContractAt time.Time `json:"contractAt,omitzero"`
}

// Measured is one measurement, with the step and weight it was taken at.
type Measured struct {
	At     time.Time `json:"at"`
	Step   int       `json:"step"`
	Weight int       `json:"weight"` // the new slot's share of traffic
	rollout.Measurement
}

const maxMeasurements = 200

// MaxEvents bounds a status's events: one per analysis would otherwise
// grow it past Temporal's 2 MB payload limit over a long bake, and every
// Update and Query returns it whole.
const MaxEvents = 200

// EventsSince returns the events after the first n of the rollout (n
// counts every event, dropped ones too) and how many were dropped unseen.
func (s *Status) EventsSince(n int) (events []Event, missed int) {
	i := n - s.EventsDropped
	if i < 0 {
		missed, i = -i, 0
	}
	if i > len(s.Events) {
		return nil, missed
	}
	return s.Events[i:], missed
}

// EventCount is the number of events the rollout has had.
func (s *Status) EventCount() int { return s.EventsDropped + len(s.Events) }

// StepsText is the steps as the spec writes them: [mirror header 50% 100%].
func (s *Status) StepsText() string {
	labels := make([]string, len(s.Steps))
	for i := range s.Steps {
		labels[i] = spec.Steps(s.Steps).Label(i)
	}
	return "[" + strings.Join(labels, " ") + "]"
}

// Traffic is the new version's share of the traffic now.
func (s *Status) Traffic() int {
	if s.Target == rollout.None {
		return 0
	}
	return s.Weights.Of(s.Target)
}

// Strategy is how a Rollback goes back.
type Strategy string

// Rollback strategies.
const (
	// Immediate puts 100 % on the previous slot in one change.
	Immediate Strategy = "immediate"
	// Gradual moves traffic back in steps over a duration, on durable timers.
	Gradual Strategy = "gradual"
	// Swap flips the whole environment back and keeps the bad slot running,
	// untouched, for investigation, until someone retires it.
	Swap Strategy = "swap"
)

// Strategies lists the rollback strategies.
var Strategies = []Strategy{Immediate, Gradual, Swap}

// RollbackInput starts a Rollback.
type RollbackInput struct {
	Spec     spec.Service `json:"spec"`
	Strategy Strategy     `json:"strategy"`
	Reason   string       `json:"reason"`
	By       string       `json:"by,omitempty"`
	// From is the bad slot, To the previous one, as the last rollout left them.
	From            rollout.Slot `json:"from"`
	To              rollout.Slot `json:"to"`
	BadVersion      string       `json:"badVersion"`
	PreviousVersion string       `json:"previousVersion"`
	// Handoff: the rollout of the service was aborted to make way for this
	// rollback; it waits for that rollout to close and free the service.
	Handoff bool `json:"handoff,omitempty"`
}

// WeightChange is one entry of a rollback's timeline.
type WeightChange struct {
	At      time.Time       `json:"at"`
	Weights rollout.Weights `json:"weights"`
}

// RollbackReport is what a rollback did, kept as the workflow's result and
// returned live by its status Query.
type RollbackReport struct {
	Service         string                `json:"service"`
	Environment     string                `json:"environment"`
	Strategy        Strategy              `json:"strategy"`
	Reason          string                `json:"reason"`
	By              string                `json:"by"`
	From            rollout.Slot          `json:"from"`
	To              rollout.Slot          `json:"to"`
	BadVersion      string                `json:"badVersion"`
	PreviousVersion string                `json:"previousVersion"`
	Phase           rollout.Phase         `json:"phase"`
	Paused          bool                  `json:"paused"`
	Weights         rollout.Weights       `json:"weights"`
	Timeline        []WeightChange        `json:"timeline"`
	Checks          []rollout.CheckResult `json:"checks,omitempty"`
	StartedAt       time.Time             `json:"startedAt"`
	EndedAt         time.Time             `json:"endedAt,omitempty"`
	// NextStepAt and Remaining show a gradual rollback's progress.
	NextStepAt time.Time     `json:"nextStepAt,omitempty"`
	Remaining  time.Duration `json:"remaining,omitempty"`
	// BadSlotAddr is where the bad slot still answers, for investigation.
	BadSlotAddr string  `json:"badSlotAddr,omitempty"`
	Events      []Event `json:"events"`
	Error       string  `json:"error,omitempty"`
}

// Duration is how long the rollback took (so far).
func (r *RollbackReport) Duration() time.Duration {
	if r.EndedAt.IsZero() {
		return 0
	}
	return r.EndedAt.Sub(r.StartedAt)
}

// Ending is an error a run ends with other than success. Its value is the
// type of the Temporal ApplicationError that carries it across the wire,
// so a run recorded by any build is read the same.
type Ending string

// The endings of a Deployment (and a writer refused the service's lock).
const (
	ErrRolledBack Ending = "RolledBack"    // traffic went back to the stable slot
	ErrFailed     Ending = "Failed"        // the rollout stopped before any traffic moved
	ErrLocked     Ending = "ServiceLocked" // another writer holds the service (lock.go)
)

func (e Ending) Error() string {
	switch e {
	case ErrRolledBack:
		return "rolled back"
	case ErrFailed:
		return "failed before any traffic moved"
	case ErrLocked:
		return "another rollout or rollback holds the service"
	}
	return string(e)
}

// EndingOf is the ending a run's error carries, or "" for any other error.
func EndingOf(err error) Ending {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		switch e := Ending(app.Type()); e {
		case ErrRolledBack, ErrFailed, ErrLocked:
			return e
		}
	}
	return ""
}

// end is the ApplicationError a run ends with, carrying its status.
func (e Ending) end(msg string, details ...any) error {
	return temporal.NewNonRetryableApplicationError(msg, string(e), nil, details...)
}

// countOutcome records how a rollout or rollback ended, for /metrics.
func countOutcome(ctx workflow.Context, kind, service, env, result string) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"kind": kind, "service": service, "environment": env, "result": result}).
		Counter("switchyard_rollouts").Inc(1)
}

// recordRollback records how long a rollback took, from its decision to 100 % on the previous slot.
func recordRollback(ctx workflow.Context, r *RollbackReport) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"service": r.Service, "environment": r.Environment, "strategy": string(r.Strategy)}).
		Timer("switchyard_rollback_duration").Record(r.Duration())
}

// upsertRun keeps a run's search attributes in step with its state, so the
// Web UI and the status Query never disagree.
func upsertRun(ctx workflow.Context, service, env, version string, phase rollout.Phase, traffic int) {
	_ = workflow.UpsertTypedSearchAttributes(ctx, RunAttributes(service, env, version, phase, traffic)...)
}

// notifyEvent tells every alert channel about a rollout or rollback event
// when the spec asks (monitor.notifyEvents). Best effort: a channel that is
// down is retried a little and never changes the outcome.
func notifyEvent(ctx workflow.Context, s *spec.Service, summary, detail string) {
	if !s.Monitor.NotifyEvents {
		return
	}
	send(ctx, s, incident.Event, "event", summary, detail)
}

// alert opens an incident on every alert channel, whatever notifyEvents says:
// something needs a person.
func alert(ctx workflow.Context, s *spec.Service, check, summary, detail string) {
	send(ctx, s, incident.Open, check, summary, detail)
}

func send(ctx workflow.Context, s *spec.Service, action incident.Action, check, summary, detail string) {
	if len(s.Alerts) == 0 {
		return
	}
	in := incident.Incident{Key: incident.Key(s.Name, s.Environment, check), Service: s.Name, Environment: s.Environment,
		Check: check, Summary: summary, Detail: detail, OpenedAt: workflow.Now(ctx)}
	var ns []activities.NotifyInput
	for c := range s.Alerts {
		ns = append(ns, activities.NotifyInput{Channel: c, Action: action, In: in})
	}
	notify(ctx, ns)
}
