package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/schema"
	"github.com/switchyard/switchyard/internal/spec"
)

// schemaCall is one Schema activity the rollout asked for, and when.
type schemaCall struct {
	in activities.SchemaInput
	at time.Duration
}

func withMigrations(f *fixture, contract string) *[]schemaCall {
	f.in.Spec.Migrations = &spec.Migrations{Tool: spec.ToolGoose, Dir: "db", DatabaseEnv: "DB_URL", Contract: contract, Timeout: spec.Duration(time.Minute)}
	var calls []schemaCall
	f.env.OnActivity(acts.Schema, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SchemaInput) ([]schema.Step, error) {
			calls = append(calls, schemaCall{in, f.env.Now().Sub(f.start)})
			return []schema.Step{{Phase: in.Phase, Version: in.Version, Migrations: []string{in.Phase + ".sql"}}}, nil
		})
	return &calls
}

func TestTheExpandRunsBeforeVerifyAndNextReleaseContractsThePreviousVersion(t *testing.T) {
	f := newFixture(t)
	calls := withMigrations(f, spec.NextRelease)
	verified := time.Duration(-1)
	f.onVerify = func() {
		require.Len(t, *calls, 1, "the expand ran before the slot was verified")
		verified = f.env.Now().Sub(f.start)
	}
	f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.GreaterOrEqual(t, verified, time.Duration(0))
	require.Len(t, *calls, 2)
	require.Equal(t, activities.SchemaInput{Phase: "expand", Version: "v2"}, (*calls)[0].in)
	// the contract of the version before, once the old slot is retired
	require.Equal(t, activities.SchemaInput{Phase: "contract", Version: "v1", Live: "v2"}, (*calls)[1].in)
	require.Len(t, f.retired, 1)
	require.GreaterOrEqual(t, (*calls)[1].at, f.retAt[0])
	st := f.status()
	require.Len(t, st.Schema, 2)
	require.Equal(t, "contract of v1: contract.sql", st.Schema[1].String())
}

func TestAContractDelayWaitsThenContractsThisVersion(t *testing.T) {
	f := newFixture(t)
	calls := withMigrations(f, "10m")
	f.run()
	require.NoError(t, f.env.GetWorkflowError())
	require.Len(t, *calls, 2)
	c := (*calls)[1]
	require.Equal(t, activities.SchemaInput{Phase: "contract", Version: "v2", Live: "v2"}, c.in)
	require.GreaterOrEqual(t, c.at-f.retAt[0], 10*time.Minute, "the contract waited its delay after the retirement")
}

func TestARefusedExpandFailsTheRolloutBeforeAnyTraffic(t *testing.T) {
	f := newFixture(t)
	f.in.Spec.Migrations = &spec.Migrations{Tool: spec.ToolGoose, Dir: "db", DatabaseEnv: "DB_URL", Contract: spec.NextRelease, Timeout: spec.Duration(time.Minute)}
	f.env.OnActivity(acts.Schema, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SchemaInput) ([]schema.Step, error) {
			return nil, temporal.NewNonRetryableApplicationError("v2 needs the schema that 00001_drop_name.sql removed", activities.ErrBadInput, nil)
		})
	f.run()
	err := f.env.GetWorkflowError()
	require.ErrorContains(t, err, "checking and expanding the schema: v2 needs the schema that 00001_drop_name.sql removed")
	require.Empty(t, f.shifts, "no traffic moved")
}
