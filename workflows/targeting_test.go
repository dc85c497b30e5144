package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

func TestAMirrorAndAHeaderStepKeepTheWeightsAndPutTheirRoutesInForce(t *testing.T) {
	f := newFixture(t)
	s := &f.in.Spec
	s.Rollout.Steps = spec.Steps{spec.MirrorStep, spec.HeaderStep, 50, 100}
	s.Rollout.Match = &spec.Match{Header: map[string]string{"X-Canary": "true"}}
	s.Rollout.Sticky = &spec.Sticky{Cookie: "sw"}
	s.Rollout.Mirror = &spec.Mirror{Share: 0.2, CompareBody: true}
	s.Checks.TestRoute = &spec.TestRoute{Header: "X-Switchyard-Test", Value: "1", URL: "http://127.0.0.1:1"}
	f.run()
	require.NoError(t, f.env.GetWorkflowError())
	// the test route before the checks, then mirror, header, 50, 100
	require.Equal(t, []rollout.Weights{{Blue: 100}, {Blue: 100}, {Blue: 100}, {Blue: 50, Green: 50}, {Green: 100}}, f.shifts)
	test := f.routes[0]
	require.Equal(t, rollout.Routes{Target: rollout.Green, TestHeader: "X-Switchyard-Test", TestValue: "1"}, *test, "only the test route before the checks")
	mirror := f.routes[1]
	require.Equal(t, 0.2, mirror.MirrorShare)
	require.True(t, mirror.MirrorBody)
	require.Equal(t, "true", mirror.Header["X-Canary"])
	header := f.routes[2]
	require.Zero(t, header.MirrorShare, "the mirror stops after its step")
	require.Equal(t, "sw", header.StickyCookie)
	require.Equal(t, "sw", f.routes[3].StickyCookie, "the routes stay in force as the weight rises")
	require.Nil(t, f.routes[4], "at 100 % the routes are cleared")
	require.Nil(t, f.status().Routes)
	// each stage baked like any step
	require.GreaterOrEqual(t, f.shiftAt[2]-f.shiftAt[1], time.Minute)
	require.GreaterOrEqual(t, f.shiftAt[3]-f.shiftAt[2], time.Minute)
}
