// Package workflows holds Switchyard's deterministic workflow code: no I/O,
// no wall clock, no goroutines, no map iteration. Side effects live in the
// activities package.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// TaskQueue is the default task queue of workers and rollouts.
const TaskQueue = "switchyard"

// Names that cross the wire. Each control is both an Update (validated and
// acknowledged, used by the CLI) and a Signal of the same name (for the Web
// UI's "Send a Signal" and `temporal workflow signal`).
const (
	// QueryStatus returns a Status.
	QueryStatus = "status"
	// Pause holds the rollout at its current step; the bake clock stops.
	Pause = "pause"
	// Resume continues a paused rollout.
	Resume = "resume"
	// Abort puts 100 % back on the stable slot and ends the rollout rolled back. Takes an AbortRequest.
	Abort = "abort"
	// Promote skips the current bake, or with Full goes straight to 100 %. Takes a PromoteRequest.
	Promote = "promote"
)

// Search attributes every run carries, so the Web UI and `temporal workflow
// list` can find it.
var (
	// SAService is the service name.
	SAService = temporal.NewSearchAttributeKeyKeyword("SwitchyardService")
	// SAEnvironment is the environment (staging, production, ...).
	SAEnvironment = temporal.NewSearchAttributeKeyKeyword("SwitchyardEnvironment")
	// SAVersion is the version being rolled out.
	SAVersion = temporal.NewSearchAttributeKeyKeyword("SwitchyardVersion")
	// SAPhase is the rollout's phase.
	SAPhase = temporal.NewSearchAttributeKeyKeyword("SwitchyardPhase")
	// SATraffic is the new version's share of traffic, in percent.
	SATraffic = temporal.NewSearchAttributeKeyInt64("SwitchyardTrafficPercent")
)

// DeploymentID is the workflow ID of a service's rollout in one environment:
// one at a time, by construction.
func DeploymentID(service, env string) string { return "deploy/" + service + "/" + env }

// DeploymentInput starts a rollout.
type DeploymentInput struct {
	Spec    spec.Service `json:"spec"`
	Version string       `json:"version"`
	// By says who or what asked (user@host, CI job), for the events.
	By string `json:"by,omitempty"`
}

// AbortRequest asks to roll back.
type AbortRequest struct {
	Reason string `json:"reason"`
	By     string `json:"by,omitempty"`
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
	Service         string                `json:"service"`
	Environment     string                `json:"environment"`
	Version         string                `json:"version"`
	PreviousVersion string                `json:"previousVersion,omitempty"`
	Phase           rollout.Phase         `json:"phase"`
	Paused          bool                  `json:"paused"`
	Target          rollout.Slot          `json:"target"`
	Stable          rollout.Slot          `json:"stable"`
	Steps           []int                 `json:"steps"`
	Step            int                   `json:"step"` // index into Steps; -1 before the first shift
	Weights         rollout.Weights       `json:"weights"`
	Checks          []rollout.CheckResult `json:"checks,omitempty"`
	AnalysisSource  string                `json:"analysisSource,omitempty"`
	Reason          string                `json:"reason,omitempty"`
	StartedAt       time.Time             `json:"startedAt"`
	UpdatedAt       time.Time             `json:"updatedAt"`
	BakeEndsAt      time.Time             `json:"bakeEndsAt,omitempty"`
	Events          []Event               `json:"events"`
}

// Traffic is the new version's share of traffic.
func (s *Status) Traffic() int {
	if s.Target == rollout.None {
		return 0
	}
	return s.Weights.Of(s.Target)
}

// Error types a Deployment ends with, besides success.
const (
	ErrRolledBack = "RolledBack" // traffic went back to the stable slot
	ErrFailed     = "Failed"     // the rollout stopped before any traffic moved
)
