package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// FreezeState is a freeze of a release: who froze it, why, and the
// services it covers (a plain deploy of one is refused too).
type FreezeState struct {
	Release    string    `json:"release"`
	Services   []string  `json:"services"`
	Reason     string    `json:"reason"`
	By         string    `json:"by"`
	At         time.Time `json:"at"`
	UnfrozenBy string    `json:"unfrozenBy,omitempty"`
	UnfrozenAt time.Time `json:"unfrozenAt,omitempty"`
}

// Freeze runs while a release is frozen, so the freeze is durable and
// visible (its status Query, the Web UI); the Unfreeze signal ends it.
func Freeze(ctx workflow.Context, in FreezeState) (*FreezeState, error) {
	st := in
	st.At = workflow.Now(ctx)
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (*FreezeState, error) { return &st, nil }); err != nil {
		return nil, err
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, SARelease.ValueSet(in.Release))
	var by string
	workflow.GetSignalChannel(ctx, Unfreeze).Receive(ctx, &by)
	st.UnfrozenBy, st.UnfrozenAt = orUnknown(by), workflow.Now(ctx)
	return &st, nil
}
