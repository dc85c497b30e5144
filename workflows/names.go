package workflows

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/switchyard/switchyard/internal/rollout"
)

// Every name that crosses the wire is defined here, once: workflow types and
// IDs, the controls (Updates and Signals), the Query, and the search
// attributes. The CLI, the starter, the worker and the dev server read them
// from here (a search attribute's name through key.GetName()).

// TaskQueue is the default task queue of workers and rollouts.
const TaskQueue = "switchyard"

// Workflow types, as registered by the worker and started by the starter.
const (
	// DeploymentWorkflow rolls a version out (Deployment).
	DeploymentWorkflow = "Deployment"
	// RollbackWorkflow takes a service back to its previous slot (Rollback).
	RollbackWorkflow = "Rollback"
	// RetireWorkflow stops one idle slot (Retire).
	RetireWorkflow = "Retire"
	// MonitorWorkflow is one monitoring run of a Schedule (Monitor).
	MonitorWorkflow = "Monitor"
	// ReleaseWorkflow rolls several services out through environments (Release).
	ReleaseWorkflow = "Release"
	// FreezeWorkflow runs while a release is frozen (Freeze).
	FreezeWorkflow = "Freeze"
	// GuardWorkflow judges a promoted version after its warm window (Guard).
	GuardWorkflow = "Guard"
)

// GuardID is the workflow ID of a service's post-promotion guard: one per
// service and environment, the newest promotion's.
func GuardID(service, env string) string { return "guard/" + service + "/" + env }

// DeploymentID is the workflow ID of a service's rollout in one environment:
// one at a time, by construction.
func DeploymentID(service, env string) string { return "deploy/" + service + "/" + env }

// RollbackID is the workflow ID of a service's rollback in one environment.
func RollbackID(service, env string) string { return "rollback/" + service + "/" + env }

// RetireID is the workflow ID of a request to stop a slot.
func RetireID(service, env string) string { return "retire/" + service + "/" + env }

// ReleaseID is the workflow ID of a release: one run of it at a time.
func ReleaseID(name string) string { return "release/" + name }

// FreezeID is the workflow ID of a release's freeze: it runs while frozen.
func FreezeID(release string) string { return "freeze/" + release }

// MonitorID is the ID of a service's monitoring Schedule (and the prefix of its runs).
func MonitorID(service, env string) string { return "monitor/" + service + "/" + env }

// Names of the controls. Each is both an Update (validated and acknowledged,
// used by the CLI) and a Signal of the same name (for the Web UI's "Send a
// Signal" and `temporal workflow signal`).
const (
	// QueryStatus returns a Status (a RollbackReport for a Rollback).
	QueryStatus = "status"
	// Pause holds the rollout at its current step; the bake clock stops.
	Pause = "pause"
	// Resume continues a paused rollout.
	Resume = "resume"
	// Abort puts 100 % back on the stable slot and ends the rollout rolled back. Takes an AbortRequest.
	Abort = "abort"
	// Promote skips the current bake, or with Full goes straight to 100 %. Takes a PromoteRequest.
	Promote = "promote"
	// Escalate turns a gradual rollback into an immediate one.
	Escalate = "escalate"
	// ReleaseDone tells a held rollout that its release's environment is
	// done: retire the old slot.
	ReleaseDone = "release-done"
	// ServicePromotedSignal is a held rollout telling its release it
	// promoted. Takes a ServicePromoted.
	ServicePromotedSignal = "service-promoted"
	// Approve lets a release into an environment. Takes an ApprovalRequest.
	Approve = "approve"
	// Reject ends a release waiting for approval. Takes an ApprovalRequest.
	Reject = "reject"
	// FreezeSignal tells a running release it is frozen: it pauses its
	// rollouts before their next traffic step. Takes a FreezeState.
	FreezeSignal = "freeze"
	// Unfreeze ends a freeze, and resumes a release it paused.
	Unfreeze = "unfreeze"
	// Breach tells a Guard its version breached (monitoring's critical
	// check): it redeploys the known-good version. Takes an AbortRequest.
	Breach = "breach"
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
	// SARelease is the release a run belongs to (set on the release and its children).
	SARelease = temporal.NewSearchAttributeKeyKeyword("SwitchyardRelease")
	// SAIncidents is how many incidents a monitoring run left open.
	SAIncidents = temporal.NewSearchAttributeKeyInt64("SwitchyardOpenIncidents")
)

// RunAttributes are a rollout's or rollback's search attributes, the one
// list that starts, children and upserts all set: the Web UI and the
// status Query never disagree.
func RunAttributes(service, env, version string, phase rollout.Phase, traffic int) []temporal.SearchAttributeUpdate {
	return []temporal.SearchAttributeUpdate{
		SAService.ValueSet(service),
		SAEnvironment.ValueSet(env),
		SAVersion.ValueSet(version),
		SAPhase.ValueSet(string(phase)),
		SATraffic.ValueSet(int64(traffic)),
	}
}

// SearchAttributes is what a namespace must register for the keys above:
// the worker adds what is missing, the dev server creates them.
var SearchAttributes = map[string]enumspb.IndexedValueType{
	SAService.GetName():     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SAEnvironment.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SAVersion.GetName():     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SAPhase.GetName():       enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SATraffic.GetName():     enumspb.INDEXED_VALUE_TYPE_INT,
	SARelease.GetName():     enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	SAIncidents.GetName():   enumspb.INDEXED_VALUE_TYPE_INT,
}

// MemoSchema is the memo field where a rollout writes what its migrations
// did, for `history`.
const MemoSchema = "schema"
