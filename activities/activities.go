// Package activities holds the side effects of a rollout: build, provision,
// probe, analyze, shift and retire. Each sets an absolute state and reads it
// back, so running one twice is harmless, and each fails non-retryably on
// input that no retry can fix.
package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/switchyard/switchyard/internal/check"
	"github.com/switchyard/switchyard/internal/platform"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router"
	"github.com/switchyard/switchyard/internal/spec"
)

// Activities holds what the activities share.
type Activities struct {
	// Embedded is the worker's in-process Caddy, for router kind embedded.
	Embedded *router.Embedded
	// Client reads a run's spec from its input, and past Monitor runs.
	Client client.Client
	// Reach is the worker's policy: what a spec may run, read and reach
	// (nil: anything).
	Reach *spec.Reach

	specs specCache
}

// Error types the workflow and the CLI recognise.
const (
	ErrBadInput = "BadInput" // not retried: fix the spec or the environment
)

func badInput(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrBadInput, nil)
}

// keepAlive heartbeats every half second until the returned stop is
// called, when the workflow asked for heartbeats: a worker that dies with
// the activity in flight is then noticed within the heartbeat timeout (3 s)
// instead of the activity's whole StartToClose, and another worker retries
// it at once. The activities are idempotent, so the retry is safe.
func keepAlive(ctx context.Context) (stop func()) {
	if activity.GetInfo(ctx).HeartbeatTimeout <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}

// classify turns adapter errors that say no retry can fix them into
// non-retryable ones.
func classify(err error) error {
	if rollout.IsPermanent(err) {
		return badInput(err)
	}
	return err
}

func (a *Activities) router(ctx context.Context, s *spec.Service) (router.Router, error) {
	if s.Router.Kind == spec.RouterEmbedded {
		if a.Embedded == nil {
			return nil, badInput(errors.New("router kind embedded: this worker runs no embedded router"))
		}
		if err := a.Embedded.Start(ctx, s.Router.Caddy.Admin); err != nil {
			return nil, err
		}
	}
	r, err := router.New(s, a.Embedded)
	if err != nil {
		return nil, badInput(err)
	}
	return r, nil
}

// State is what the router and the platform say about a service now.
type State struct {
	Weights rollout.Weights  `json:"weights"`
	Blue    rollout.Instance `json:"blue"`
	Green   rollout.Instance `json:"green"`
	// StartedBy is who Temporal verified started the run ("jwt:ci@example.com"),
	// from its start event's principal, when asked and the server records one.
	StartedBy string `json:"startedBy,omitempty"`
}

// Instance is what runs in a slot.
func (s State) Instance(slot rollout.Slot) rollout.Instance {
	if slot == rollout.Green {
		return s.Green
	}
	return s.Blue
}

// ReadStateInput names the service.
type ReadStateInput struct {
	Spec *spec.Service `json:"spec,omitempty"` // nil: the run's own (see spec.go)
	// Who asks for StartedBy too.
	Who bool `json:"who,omitempty"`
}

// ReadState makes sure the router knows both slots, then reads the weights
// and what runs in each slot: which slot is live comes from the router, not
// from memory.
func (a *Activities) ReadState(ctx context.Context, in ReadStateInput) (*State, error) {
	defer keepAlive(ctx)()
	svc, err := a.spec(ctx, in.Spec)
	if err != nil {
		return nil, err
	}
	r, err := a.router(ctx, svc)
	if err != nil {
		return nil, err
	}
	if err := r.Ensure(ctx); err != nil {
		return nil, classify(err)
	}
	w, err := r.Weights(ctx)
	if err != nil {
		return nil, classify(err)
	}
	p, err := platform.New(svc)
	if err != nil {
		return nil, badInput(err)
	}
	st := &State{Weights: w}
	if st.Blue, err = p.Inspect(ctx, rollout.Blue); err != nil {
		return nil, classify(err)
	}
	if st.Green, err = p.Inspect(ctx, rollout.Green); err != nil {
		return nil, classify(err)
	}
	if in.Who {
		st.StartedBy = a.startedBy(ctx)
	}
	return st, nil
}

// BuildInput names the version to build.
type BuildInput struct {
	Spec    *spec.Service `json:"spec,omitempty"` // nil: the run's own (see spec.go)
	Version string        `json:"version"`
}

// Build runs the spec's build command with VERSION set, heartbeating its last
// output line (a failing build returns the tail of its output), then has the
// platform make its artifact: on docker, the image, pushed, by digest.
func (a *Activities) Build(ctx context.Context, in BuildInput) (string, error) {
	defer keepAlive(ctx)()
	svc, err := a.spec(ctx, in.Spec)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, svc.Build.Timeout.D())
	defer cancel()
	// a build step can be silent for minutes: heartbeat its last line on a clock
	var mu sync.Mutex
	last := "building " + in.Version
	hb := func(msg string) { mu.Lock(); last = msg; mu.Unlock() }
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
				mu.Lock()
				msg := last
				mu.Unlock()
				activity.RecordHeartbeat(ctx, msg)
			}
		}
	}()
	if err := runBuildCommand(ctx, svc, in.Version, hb); err != nil {
		return "", err
	}
	p, err := platform.New(svc)
	if err != nil {
		return "", badInput(err)
	}
	artifact, err := p.Build(ctx, in.Version, hb)
	return artifact, classify(err)
}

func runBuildCommand(ctx context.Context, s *spec.Service, version string, hb func(string)) error {
	args := make([]string, len(s.Build.Command))
	for i, a := range s.Build.Command {
		args[i] = strings.ReplaceAll(a, "{{version}}", version)
	}
	if len(args) == 0 {
		return nil
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = s.Dir
	cmd.Env = commandEnv(s, "VERSION="+version)
	out := &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = out, out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return badInput(fmt.Errorf("build: start %s: %w (check build.command)", args[0], err))
	}
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case err := <-done:
			if err != nil {
				return badInput(fmt.Errorf("build %s failed: %w; last output:\n%s", version, err, s.Redact(out.String())))
			}
			return nil
		case <-time.After(500 * time.Millisecond):
			hb(s.Redact(out.lastLine()))
		}
	}
}

// baseEnv is what a build or gate command gets of the worker's environment
// without asking: enough to find programs and a home, no credentials.
var baseEnv = []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "USER"}

// commandEnv is a build or gate command's environment: baseEnv, the
// variables the spec names in build.env (held to the worker's policy when
// the spec was admitted), and extra.
func commandEnv(s *spec.Service, extra ...string) []string {
	var env []string
	for _, k := range append(slices.Clone(baseEnv), s.Build.Env...) {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, extra...)
}

// GatesInput names the artifact to check.
type GatesInput struct {
	Spec     *spec.Service `json:"spec,omitempty"` // nil: the run's own (see spec.go)
	Version  string        `json:"version"`
	Artifact string        `json:"artifact"`
}

// Gates runs every pre-deployment gate — the spec's commands, then the
// platform's artifact checks — and returns each result; all run, so one
// report shows every problem. A failed gate is a result, not an error.
func (a *Activities) Gates(ctx context.Context, in GatesInput) ([]rollout.CheckResult, error) {
	defer keepAlive(ctx)()
	svc, err := a.spec(ctx, in.Spec)
	if err != nil {
		return nil, err
	}
	var res []rollout.CheckResult
	for _, g := range svc.Gates {
		activity.RecordHeartbeat(ctx, "gate "+g.Name)
		res = append(res, runGate(ctx, svc, g, in.Version, in.Artifact))
	}
	p, err := platform.New(svc)
	if err != nil {
		return nil, badInput(err)
	}
	more, err := p.Gates(ctx, in.Artifact)
	if err != nil {
		return nil, classify(err)
	}
	return append(res, more...), nil
}

func runGate(ctx context.Context, s *spec.Service, g spec.Gate, version, artifact string) rollout.CheckResult {
	start := time.Now()
	res := rollout.CheckResult{Name: "gate " + g.Name, At: start}
	ctx, cancel := context.WithTimeout(ctx, g.Timeout.D())
	defer cancel()
	args := make([]string, len(g.Command))
	for i, a := range g.Command {
		args[i] = strings.NewReplacer("{{version}}", version, "{{artifact}}", artifact).Replace(a)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = s.Dir
	cmd.Env = commandEnv(s, "VERSION="+version, "ARTIFACT="+artifact)
	out := &tailBuffer{max: 2048}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		res.Detail = fmt.Sprintf("timed out after %s (gates[].timeout)", g.Timeout)
	case err != nil:
		res.Detail = fmt.Sprintf("%v after %s", err, took)
	default:
		res.Passed = true
		res.Detail = fmt.Sprintf("exit 0 after %s", took)
	}
	if t := strings.TrimSpace(s.Redact(out.String())); t != "" && !res.Passed {
		res.Detail += "; output:\n" + t
	}
	return res
}

// ProvisionInput names the slot and version.
type ProvisionInput struct {
	Spec    *spec.Service `json:"spec,omitempty"` // nil: the run's own (see spec.go)
	Slot    rollout.Slot  `json:"slot"`
	Version string        `json:"version"`
	// Artifact is what Build made (an image digest), "" on the process platform.
	Artifact string `json:"artifact,omitempty"`
	// Live and LiveVersion are the live slot, listed for Prometheus beside the new one.
	Live        rollout.Slot `json:"live,omitempty"`
	LiveVersion string       `json:"liveVersion,omitempty"`
}

// Provision starts the version in the idle slot, or re-attaches to it.
func (a *Activities) Provision(ctx context.Context, in ProvisionInput) (*rollout.Instance, error) {
	defer keepAlive(ctx)()
	svc, err := a.spec(ctx, in.Spec)
	if err != nil {
		return nil, err
	}
	p, err := platform.New(svc)
	if err != nil {
		return nil, badInput(err)
	}
	inst, err := p.Provision(ctx, in.Slot, in.Version, in.Artifact, func(msg string) { activity.RecordHeartbeat(ctx, msg) })
	if err != nil {
		return nil, classify(err)
	}
	inst.Summary = p.Describe(inst)
	if err := setTargets(svc, in.Slot, in.Version); err != nil {
		return nil, err
	}
	if in.Live != rollout.None && in.LiveVersion != "" {
		if err := setTargets(svc, in.Live, in.LiveVersion); err != nil {
			return nil, err
		}
	}
	return &inst, nil
}

// VerifyInput names the candidate slot and, if there is one, the live slot
// to compare its performance with.
type VerifyInput struct {
	Spec    *spec.Service `json:"spec,omitempty"` // nil: the run's own (see spec.go)
	Slot    rollout.Slot  `json:"slot"`
	Version string        `json:"version"`
	Live    rollout.Slot  `json:"live"`
	// ViaRouter sends smoke and performance through the router's test
	// route (checks.testRoute), which reaches the idle slot.
	ViaRouter bool `json:"viaRouter,omitempty"`
}

// Verify runs health, smoke and performance checks on the idle slot, which
// has no traffic yet. A failed check is a result, not an error.
func (a *Activities) Verify(ctx context.Context, in VerifyInput) ([]rollout.CheckResult, error) {
	defer keepAlive(ctx)()
	svc, err := a.spec(ctx, in.Spec)
	if err != nil {
		return nil, err
	}
	hb := func(msg string) { activity.RecordHeartbeat(ctx, msg) }
	addrs := svc.SlotAddrs(string(in.Slot))
	base := "http://" + addrs[0]
	var res []rollout.CheckResult
	add := func(name string, err error, detail string) bool {
		r := rollout.CheckResult{Name: name, Slot: in.Slot, Passed: err == nil, Detail: detail, At: time.Now()}
		if err != nil {
			r.Detail = err.Error()
		}
		res = append(res, r)
		return err == nil
	}
	healthDetail := fmt.Sprintf("%d consecutive 2xx on %s", svc.Checks.Health.Successes, svc.Checks.Health.Path)
	if len(addrs) > 1 {
		healthDetail += fmt.Sprintf(" of each of %d replicas", len(addrs))
	}
	var healthErr error
	for _, addr := range addrs {
		if healthErr = check.Health(ctx, "http://"+addr, svc.Checks.Health, hb); healthErr != nil {
			break
		}
	}
	if !add("health", healthErr, healthDetail) {
		return res, ctx.Err()
	}
	via, plain := "", ctx
	if tr := svc.Checks.TestRoute; in.ViaRouter && tr != nil {
		// the path users will take: the router, its config, its headers
		base = strings.TrimSuffix(tr.URL, "/")
		ctx = check.WithHeader(ctx, tr.Header, tr.Value)
		via = fmt.Sprintf(", through the router's test route (%s: %s)", tr.Header, tr.Value)
	}
	for _, sm := range svc.Checks.Smoke {
		hb("smoke " + sm.Name)
		if !add("smoke "+sm.Name, check.Smoke(ctx, base, in.Version, sm), fmt.Sprintf("status %d%s", sm.Status, via)) {
			return res, ctx.Err()
		}
	}
	perf := svc.Checks.Performance
	if perf.Disabled {
		return res, nil
	}
	hb("performance")
	cand := check.Probe(ctx, base+perf.Path, perf.Requests, perf.Concurrency)
	var live *check.Stats
	detail := "candidate" + via + ": " + cand.String()
	if in.Live != rollout.None {
		l := check.Probe(plain, "http://"+slotAddr(svc, in.Live)+perf.Path, perf.Requests, perf.Concurrency)
		live = &l
		detail += "; live: " + l.String()
	}
	add("performance", check.Performance(cand, live, perf), detail)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// slotAddr is the address of a slot's first replica.
func slotAddr(s *spec.Service, slot rollout.Slot) string { return s.SlotAddrs(string(slot))[0] }

// ShiftInput is the absolute split to apply.
type ShiftInput struct {
	Spec    *spec.Service   `json:"spec,omitempty"` // nil: the run's own (see spec.go)
	Weights rollout.Weights `json:"weights"`
	// Routes are the targeting routes to put in force with the weights
	// (nil, for a spec that targets: by weight only).
	Routes *rollout.Routes `json:"routes,omitempty"`
}

// ShiftResult is the split the router reports after the change, and the
// per-slot counters at that moment: the baseline of the step's analysis.
type ShiftResult struct {
	Weights  rollout.Weights                   `json:"weights"`
	Counters map[rollout.Slot]rollout.Counters `json:"counters,omitempty"`
	Source   string                            `json:"source"`
	// Mirror is the mirror's counts as it began copying: the baseline of
	// the mirror step's analysis.
	Mirror *rollout.MirrorCounters `json:"mirror,omitempty"`
}

// Shift sets the router's weights, reads them back, and snapshots counters.
func (a *Activities) Shift(ctx context.Context, in ShiftInput) (*ShiftResult, error) {
	svc, err := a.spec(ctx, in.Spec)
	if err != nil {
		return nil, err
	}
	r, err := a.router(ctx, svc)
	if err != nil {
		return nil, err
	}
	// routes go in before the weights and come out after them: a sticky
	// client is pinned before the weight moves, and stays pinned until
	// the weights alone send it where it is (no flip back in between)
	routes, t := rollout.Routes{}, router.Targeter(nil)
	if svc.Targets() {
		if t, _ = r.(router.Targeter); t == nil {
			return nil, badInput(fmt.Errorf("router kind %s cannot route by header, cookie or stickiness", svc.Router.Kind))
		}
		if in.Routes != nil {
			routes = *in.Routes
		}
	}
	var mirror *rollout.MirrorCounters
	if t != nil && routes.MirrorShare > 0 {
		switch m, err := t.Mirrored(ctx); {
		case errors.Is(err, router.ErrNoCounters):
			// the router compares nothing (Gateway API): the mirror step
			// judges the new slot on its own metrics, all shadow traffic
		case err != nil:
			return nil, classify(err)
		default:
			mirror = &m
		}
	}
	setRoutes := func() error {
		if t == nil {
			return nil
		}
		return classify(t.SetRoutes(ctx, routes))
	}
	if !routes.Empty() {
		if err := setRoutes(); err != nil {
			return nil, err
		}
	}
	if err := r.SetWeights(ctx, in.Weights); err != nil {
		return nil, classify(err)
	}
	if err := router.Verify(ctx, r, svc.Router.Kind, in.Weights); err != nil {
		return nil, classify(err)
	}
	if routes.Empty() {
		if err := setRoutes(); err != nil {
			return nil, err
		}
	}
	a.metrics(ctx, svc.Name, svc.Environment).weights(in.Weights)
	res := &ShiftResult{Weights: in.Weights, Mirror: mirror}
	res.Counters, res.Source = a.counters(ctx, svc, r)
	return res, nil
}

// counters reads per-slot counters from the router, else from the slots'
// metrics endpoints; with neither, analysis probes the slot directly.
func (a *Activities) counters(ctx context.Context, s *spec.Service, r router.Router) (map[rollout.Slot]rollout.Counters, string) {
	c, err := r.Counters(ctx)
	if err == nil {
		return c, string(s.Router.Kind) + "-stats"
	}
	if s.Rollout.Analysis.MetricsPath != "" {
		c := map[rollout.Slot]rollout.Counters{}
		for _, slot := range []rollout.Slot{rollout.Blue, rollout.Green} {
			var sum rollout.Counters
			ok := true
			for _, addr := range s.SlotAddrs(string(slot)) {
				total, errs, err := check.ScrapeRequests(ctx, "http://"+addr+s.Rollout.Analysis.MetricsPath)
				ok = ok && err == nil
				sum.Requests += total
				sum.Errors += errs
			}
			if ok {
				c[slot] = sum
			}
		}
		return c, "metrics"
	}
	return nil, "probe"
}

// RetireInput names the slot to stop.
type RetireInput struct {
	Spec *spec.Service `json:"spec,omitempty"` // nil: the run's own (see spec.go)
	Slot rollout.Slot  `json:"slot"`
}

// Retire stops a slot, after checking the router sends it no traffic: a
// retired slot must never be a live one.
func (a *Activities) Retire(ctx context.Context, in RetireInput) error {
	defer keepAlive(ctx)()
	svc, err := a.spec(ctx, in.Spec)
	if err != nil {
		return err
	}
	r, err := a.router(ctx, svc)
	if err != nil {
		return err
	}
	w, err := r.Weights(ctx)
	if err != nil {
		return err
	}
	if w.Of(in.Slot) != 0 {
		return badInput(fmt.Errorf("retire: slot %s still has %d%% of traffic (%s); refusing to stop it", in.Slot, w.Of(in.Slot), w))
	}
	p, err := platform.New(svc)
	if err != nil {
		return badInput(err)
	}
	if err := p.Retire(ctx, in.Slot); err != nil {
		return err
	}
	return setTargets(svc, in.Slot, "")
}

// StopSlots stops both slots of a service whatever the router says: for a
// clean start (the demo), never on a live service.
func StopSlots(ctx context.Context, s *spec.Service) error {
	p, err := platform.New(s)
	if err != nil {
		return err
	}
	return errors.Join(p.Retire(ctx, rollout.Blue), p.Retire(ctx, rollout.Green))
}

// tailBuffer keeps the last bytes of a command's output; the heartbeat
// reads it while the command writes it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func (t *tailBuffer) lastLine() string {
	s := strings.TrimRight(t.String(), "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
