package workflows

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/incident"
	"github.com/switchyard/switchyard/internal/release"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/schema"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/window"
)

// ReleaseInput starts a release: the versions to ship and, per
// environment in order, the plan the release spec made.
type ReleaseInput struct {
	Name string `json:"name"`
	// Versions by service; the same versions go through every environment.
	Versions     map[string]string    `json:"versions"`
	Environments []ReleaseEnvironment `json:"environments"`
	// After lists, by service, the services it deploys after (the DAG's edges, for the dashboard).
	After   map[string][]string `json:"after,omitempty"`
	Windows window.Spec         `json:"windows,omitempty"`
	// Alerts hear of approvals: waiting (with the commands and the deadline), then the decision.
	Alerts []spec.Alert `json:"alerts,omitempty"`
	By     string       `json:"by,omitempty"`
	// Emergency, when set, is why the release's rollouts go through their
	// services' held error budgets (the calendar's freezes are lifted at the start).
	Emergency string `json:"emergency,omitempty"`
}

// ReleaseEnvironment is one environment of a release: its gate and the
// services' specs, in dependency levels.
type ReleaseEnvironment struct {
	Name     string           `json:"name"`
	Approval release.Approval `json:"approval,omitempty"`
	Soak     spec.Duration    `json:"soak,omitempty"`
	// Levels are the services by dependency depth (sorted in each level).
	Levels [][]string `json:"levels"`
	// Specs by service, resolved for this environment. Read through Levels,
	// never by ranging over the map: the workflow's order must not depend on it.
	Specs map[string]spec.Service `json:"specs"`
}

// ApprovalRequest approves or rejects the environment a release waits at.
type ApprovalRequest struct {
	Environment string `json:"environment"`
	Reason      string `json:"reason,omitempty"`
	By          string `json:"by,omitempty"`
}

// ReleasePhase is where a release is.
type ReleasePhase string

// Release phases.
const (
	ReleaseRunning          ReleasePhase = "running"
	ReleaseWaitingWindow    ReleasePhase = "waiting-for-window"
	ReleaseSoaking          ReleasePhase = "soaking"
	ReleaseAwaitingApproval ReleasePhase = "awaiting-approval"
	ReleaseDeploying        ReleasePhase = "deploying"
	ReleaseFrozen           ReleasePhase = "frozen"
	ReleaseRollingBack      ReleasePhase = "rolling-back"
	ReleasePromoted         ReleasePhase = "promoted"
	ReleaseRolledBack       ReleasePhase = "rolled-back"
	ReleaseRejected         ReleasePhase = "rejected"
	ReleaseFailed           ReleasePhase = "failed"
)

// ReleaseService is one service in one environment of a release.
type ReleaseService struct {
	Service     string `json:"service"`
	Environment string `json:"environment"`
	// Level is the service's dependency depth in the environment: 0 first.
	Level           int      `json:"level"`
	After           []string `json:"after,omitempty"`
	Version         string   `json:"version"`
	PreviousVersion string   `json:"previousVersion,omitempty"`
	// Phase: pending, deploying, promoted (held warm), done, rolled-back, failed, aborted.
	Phase  string `json:"phase"`
	Reason string `json:"reason,omitempty"`
	// First: there was no previous version to go back to.
	First bool `json:"first,omitempty"`
	// Schema is each migration phase its rollout ran (its contract runs
	// once the whole environment is promoted).
	Schema []schema.Step `json:"schema,omitempty"`
}

// ReleaseApproval is the state of an environment's approval.
type ReleaseApproval struct {
	Environment string    `json:"environment"`
	Deadline    time.Time `json:"deadline,omitempty"`
	Decision    string    `json:"decision,omitempty"` // approved, rejected, timed-out
	By          string    `json:"by,omitempty"`
	Reason      string    `json:"reason,omitempty"`
}

// ReleaseStatus is what a release's status Query returns, and its result.
type ReleaseStatus struct {
	Name string `json:"name"`
	// StartedBy is who the Temporal server verified started the release.
	StartedBy    string            `json:"startedBy,omitempty"`
	Phase        ReleasePhase      `json:"phase"`
	Environment  string            `json:"environment"`
	Versions     map[string]string `json:"versions"`
	Services     []ReleaseService  `json:"services"`
	Approvals    []ReleaseApproval `json:"approvals,omitempty"`
	WaitingUntil time.Time         `json:"waitingUntil,omitempty"`
	Reason       string            `json:"reason,omitempty"`
	StartedAt    time.Time         `json:"startedAt"`
	EndedAt      time.Time         `json:"endedAt,omitempty"`
	Events       []Event           `json:"events"`
}

// Release rolls several services out, environment by environment: in each,
// the services' Deployments run as children in dependency order (a level
// in parallel), each holding its old slot warm until the whole environment
// promoted; if any fails, the ones already promoted roll back, in reverse
// order, and the release ends rolled back. Between environments it waits
// for the soak, the allowed window and the approval.
func Release(ctx workflow.Context, in ReleaseInput) (*ReleaseStatus, error) {
	for _, svc := range slices.Sorted(maps.Keys(in.Versions)) {
		if err := spec.CheckVersion(in.Versions[svc]); err != nil {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("release %s: service %s: %v", in.Name, svc, err), activities.ErrBadInput, nil)
		}
	}
	r := &releaseRun{in: in, root: ctx}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	return r.run(ctx)
}

type releaseRun struct {
	in   ReleaseInput
	st   ReleaseStatus
	root workflow.Context
	// waiting is the environment waiting for approval, "" when none is.
	waiting  string
	decision *ApprovalRequest
	approved bool
	// promoted are the held children of the current environment, by service.
	promoted map[string]ServicePromoted
	// frozen is the freeze in force, nil when none; running are the
	// children deploying now, and paused the ones the freeze paused.
	frozen  *FreezeState
	running []string
	paused  []string
	current string // the environment deploying
}

func (r *releaseRun) setup(ctx workflow.Context) error {
	r.st = ReleaseStatus{Name: r.in.Name, Phase: ReleaseRunning, Versions: r.in.Versions, StartedAt: workflow.Now(ctx)}
	for _, e := range r.in.Environments {
		for depth, level := range e.Levels {
			for _, svc := range level {
				r.st.Services = append(r.st.Services, ReleaseService{Service: svc, Environment: e.Name, Level: depth, After: r.in.After[svc], Version: r.in.Versions[svc], Phase: "pending"})
			}
		}
	}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (*ReleaseStatus, error) { return &r.st, nil }); err != nil {
		return err
	}
	c := &controls{ctx: ctx, ignored: func(name string, err error) { r.event(fmt.Sprintf("signal %s ignored: %v", name, err)) }}
	status := func() *ReleaseStatus { return &r.st }
	if err := control(c, Approve, status, r.canDecide, func(q ApprovalRequest) { r.decide(q, true) }, nil); err != nil {
		return err
	}
	if err := control(c, Reject, status, r.canDecide, func(q ApprovalRequest) { r.decide(q, false) }, nil); err != nil {
		return err
	}
	c.signal(FreezeSignal, func(ctx workflow.Context, ch workflow.ReceiveChannel) {
		var f FreezeState
		ch.Receive(ctx, &f)
		r.freeze(ctx, &f)
	})
	c.signal(Unfreeze, func(ctx workflow.Context, ch workflow.ReceiveChannel) {
		var by string
		ch.Receive(ctx, &by)
		r.unfreeze(ctx, by)
	})
	c.listen()
	_ = workflow.UpsertTypedSearchAttributes(ctx, SARelease.ValueSet(r.in.Name), SAPhase.ValueSet(string(ReleaseRunning)))
	r.event(fmt.Sprintf("release %s of %s started by %s", r.in.Name, versionList(r.in.Versions), orUnknown(r.in.By)))
	return nil
}

func versionList(v map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(v)) {
		parts = append(parts, k+"="+v[k])
	}
	return strings.Join(parts, ",")
}

// freeze pauses the rollouts running now, before their next traffic step;
// no new one starts until the release is unfrozen.
func (r *releaseRun) freeze(ctx workflow.Context, f *FreezeState) {
	if r.frozen != nil {
		return
	}
	r.frozen = f
	r.event(fmt.Sprintf("frozen by %s: %s", orUnknown(f.By), f.Reason))
	for _, svc := range r.running {
		if err := workflow.SignalExternalWorkflow(ctx, DeploymentID(svc, r.current), "", Pause, nil).Get(ctx, nil); err == nil {
			r.paused = append(r.paused, svc)
			r.event(fmt.Sprintf("paused %s in %s", svc, r.current))
		}
	}
}

// unfreeze resumes what the freeze paused.
func (r *releaseRun) unfreeze(ctx workflow.Context, by string) {
	if r.frozen == nil {
		return
	}
	r.frozen = nil
	r.event("unfrozen by " + orUnknown(by))
	for _, svc := range r.paused {
		_ = workflow.SignalExternalWorkflow(ctx, DeploymentID(svc, r.current), "", Resume, nil).Get(ctx, nil)
	}
	r.paused = nil
}

// thaw waits while the release is frozen.
func (r *releaseRun) thaw(ctx workflow.Context) error {
	if r.frozen == nil {
		return nil
	}
	phase := r.st.Phase
	r.setPhase(ctx, ReleaseFrozen)
	if err := workflow.Await(ctx, func() bool { return r.frozen == nil }); err != nil {
		return err
	}
	r.setPhase(ctx, phase)
	return nil
}

func (r *releaseRun) canDecide(req ApprovalRequest) error {
	for _, a := range r.st.Approvals {
		if a.Environment == req.Environment && a.Decision != "" {
			return fmt.Errorf("%s was already %s by %s", a.Environment, a.Decision, orUnknown(a.By))
		}
	}
	if r.decision != nil && r.waiting == req.Environment {
		return fmt.Errorf("%s was already decided by %s", r.waiting, orUnknown(r.decision.By))
	}
	switch {
	case r.waiting == "":
		return fmt.Errorf("release %s is not waiting for an approval (phase %s)", r.in.Name, r.st.Phase)
	case req.Environment != r.waiting:
		return fmt.Errorf("release %s waits for approval of %s, not %s", r.in.Name, r.waiting, req.Environment)
	}
	e := r.env(r.waiting)
	who := IdentityOf(req.By)
	if len(e.Approval.Approvers) > 0 && !slices.Contains(e.Approval.Approvers, who) {
		return fmt.Errorf("%s may not approve %s (approvers: %s)", orUnknown(req.By), r.waiting, strings.Join(e.Approval.Approvers, ", "))
	}
	if e.Approval.TwoPeople && who != "" && (strings.EqualFold(who, r.requester()) || strings.EqualFold(who, IdentityOf(r.in.By))) {
		return fmt.Errorf("%s started release %s and may not also approve %s: it needs a second person", who, r.in.Name, r.waiting)
	}
	return nil
}

// verifyRequester learns who the Temporal server verified started the
// release (its start event's principal), when it runs with an authorizer:
// the two-people rule then holds against that, not the name the client sent.
func (r *releaseRun) verifyRequester(ctx workflow.Context) {
	if workflow.GetVersion(ctx, "release-verified-requester", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 3}})
	var who string
	if err := workflow.ExecuteLocalActivity(lctx, acts.StartedBy).Get(ctx, &who); err == nil && who != "" {
		r.st.StartedBy = who
		r.event(fmt.Sprintf("started by %s (verified by Temporal)", who))
	}
}

// requester is who started the release: the verified principal's name
// when there is one, else the name its client sent.
func (r *releaseRun) requester() string {
	if _, name, ok := strings.Cut(r.st.StartedBy, ":"); ok {
		return name
	}
	return IdentityOf(r.in.By)
}

// IdentityOf is who a By names, without what the channel adds: the
// dashboard's "(dashboard)" (its names are verified by its identity
// provider) or an emergency's reason.
func IdentityOf(by string) string {
	who, _, _ := strings.Cut(by, " (")
	return strings.TrimSpace(who)
}

func (r *releaseRun) decide(req ApprovalRequest, approve bool) {
	r.decision, r.approved = &req, approve
	word := "rejected"
	if approve {
		word = "approved"
	}
	r.event(fmt.Sprintf("%s %s by %s: %s", req.Environment, word, orUnknown(req.By), req.Reason))
}

func (r *releaseRun) env(name string) *ReleaseEnvironment {
	for i := range r.in.Environments {
		if r.in.Environments[i].Name == name {
			return &r.in.Environments[i]
		}
	}
	return nil
}

func (r *releaseRun) event(msg string) {
	r.st.Events = append(r.st.Events, Event{At: workflow.Now(r.root), Message: msg})
}

func (r *releaseRun) setPhase(ctx workflow.Context, p ReleasePhase) {
	r.st.Phase = p
	r.event("phase " + string(p))
	_ = workflow.UpsertTypedSearchAttributes(ctx, SAPhase.ValueSet(string(p)))
}

func (r *releaseRun) service(svc, env string) *ReleaseService {
	for i := range r.st.Services {
		if s := &r.st.Services[i]; s.Service == svc && s.Environment == env {
			return s
		}
	}
	return nil
}

// end closes the release with a phase; an outcome other than promoted is
// an error carrying the status, as a rollout's is.
func (r *releaseRun) end(ctx workflow.Context, phase ReleasePhase, reason string) (*ReleaseStatus, error) {
	r.st.Reason, r.st.EndedAt = reason, workflow.Now(ctx)
	r.setPhase(ctx, phase)
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	if phase == ReleasePromoted {
		return &r.st, nil
	}
	return nil, temporal.NewNonRetryableApplicationError(string(phase)+": "+reason, string(phase), nil, &r.st)
}

func (r *releaseRun) run(ctx workflow.Context) (*ReleaseStatus, error) {
	r.verifyRequester(ctx)
	windows, errs := r.in.Windows.Parse("windows")
	if len(errs) > 0 {
		return r.end(ctx, ReleaseFailed, errs[0].Field+": "+errs[0].Msg)
	}
	for i := range r.in.Environments {
		e := &r.in.Environments[i]
		r.st.Environment = e.Name
		r.event("environment " + e.Name)
		if i > 0 && e.Soak > 0 {
			r.setPhase(ctx, ReleaseSoaking)
			r.st.WaitingUntil = workflow.Now(ctx).Add(e.Soak.D())
			prev := &r.in.Environments[i-1]
			// the checks run through the soak (at most 4 passes), the last at its end
			passes := 4
			if every := soakEvery(prev); every > 0 && int(e.Soak.D()/every) < passes {
				passes = max(1, int(e.Soak.D()/every))
			}
			for p := 0; p < passes; p++ {
				if err := workflow.Sleep(ctx, e.Soak.D()/time.Duration(passes)); err != nil {
					return nil, err
				}
				if reason := r.soakChecks(ctx, prev); reason != "" {
					return r.end(ctx, ReleaseFailed, fmt.Sprintf("%s did not hold through its soak: %s", prev.Name, reason))
				}
			}
			r.st.WaitingUntil = time.Time{}
			r.event(fmt.Sprintf("%s held through its soak of %s: its monitoring checks pass", prev.Name, e.Soak))
		}
		if err := r.thaw(ctx); err != nil {
			return nil, err
		}
		if f, frozen := windows.Frozen(workflow.Now(ctx)); frozen {
			return r.end(ctx, ReleaseFailed, fmt.Sprintf("%s is frozen (%s)", e.Name, f.Text))
		}
		if ok, next := windows.Allowed(workflow.Now(ctx)); !ok {
			if next.IsZero() {
				return r.end(ctx, ReleaseFailed, "no allowed window ever opens")
			}
			r.setPhase(ctx, ReleaseWaitingWindow)
			r.st.WaitingUntil = next
			r.event(fmt.Sprintf("outside the allowed windows: waiting until %s", next.UTC().Format(time.RFC3339)))
			if err := workflow.Sleep(ctx, next.Sub(workflow.Now(ctx))); err != nil {
				return nil, err
			}
			r.st.WaitingUntil = time.Time{}
		}
		if e.Approval.Required {
			if st, err, stop := r.approval(ctx, e); stop {
				return st, err
			}
		}
		if st, err, stop := r.deploy(ctx, e); stop {
			return st, err
		}
	}
	return r.end(ctx, ReleasePromoted, "")
}

// soakEvery is how often an environment's services ask to be checked: the
// shortest monitor.every among them.
func soakEvery(e *ReleaseEnvironment) time.Duration {
	var every time.Duration
	for _, level := range e.Levels {
		for _, svc := range level {
			if d := e.Specs[svc].Monitor.Every.D(); d > 0 && (every == 0 || d < every) {
				every = d
			}
		}
	}
	return every
}

// soakChecks runs every service's monitoring checks on an environment
// that soaked (a Monitor child each, at once) and returns what fails, or "".
func (r *releaseRun) soakChecks(ctx workflow.Context, e *ReleaseEnvironment) string {
	run := workflow.GetInfo(ctx).WorkflowExecution.RunID
	type pending struct {
		svc string
		f   workflow.ChildWorkflowFuture
	}
	var ps []pending
	for _, level := range e.Levels {
		for _, svc := range level {
			cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
				WorkflowID: fmt.Sprintf("%s-soak-%s-%d", MonitorID(svc, e.Name), run, workflow.Now(ctx).UnixMilli()),
				TypedSearchAttributes: temporal.NewSearchAttributes(SAService.ValueSet(svc), SAEnvironment.ValueSet(e.Name),
					SARelease.ValueSet(r.in.Name)),
			})
			ps = append(ps, pending{svc, workflow.ExecuteChildWorkflow(cctx, MonitorWorkflow, MonitorInput{Spec: e.Specs[svc]})})
		}
	}
	var failing []string
	for _, p := range ps {
		var st incident.State
		if err := p.f.Get(ctx, &st); err != nil {
			failing = append(failing, fmt.Sprintf("%s: the checks could not run: %s", p.svc, rootMessage(err)))
			continue
		}
		for _, c := range st.Results {
			if !c.Passed {
				failing = append(failing, fmt.Sprintf("%s: %s: %s", p.svc, c.Name, c.Detail))
			}
		}
	}
	return strings.Join(failing, "; ")
}

// approval waits for an environment's approval until its deadline; stop is
// true when the release ends here.
func (r *releaseRun) approval(ctx workflow.Context, e *ReleaseEnvironment) (*ReleaseStatus, error, bool) {
	r.waiting, r.decision = e.Name, nil
	defer func() { r.waiting = "" }()
	a := ReleaseApproval{Environment: e.Name}
	if t := e.Approval.Timeout.D(); t > 0 {
		a.Deadline = workflow.Now(ctx).Add(t)
	}
	r.st.Approvals = append(r.st.Approvals, a)
	cur := &r.st.Approvals[len(r.st.Approvals)-1]
	r.setPhase(ctx, ReleaseAwaitingApproval)
	detail := fmt.Sprintf("switchyard release approve %s --env %s --reason ...\nswitchyard release reject %s --env %s --reason ...", r.in.Name, e.Name, r.in.Name, e.Name)
	if !a.Deadline.IsZero() {
		detail += fmt.Sprintf("\ndeadline %s, then: %s", a.Deadline.UTC().Format(time.RFC3339), orDefault(e.Approval.OnTimeout, release.OnTimeoutAbort))
	}
	r.announce(ctx, e.Name, fmt.Sprintf("release %s (%s) waits for approval of %s", r.in.Name, versionList(r.in.Versions), e.Name), detail)
	defer func() {
		if cur.Decision != "" {
			r.announce(ctx, e.Name, fmt.Sprintf("release %s: %s %s", r.in.Name, e.Name, cur.Decision), strings.TrimSpace(orUnknown(cur.By)+" "+cur.Reason))
		}
	}()
	decided := func() bool { return r.decision != nil }
	var err error
	if t := e.Approval.Timeout.D(); t > 0 {
		var ok bool
		ok, err = workflow.AwaitWithTimeout(ctx, t, decided)
		if err == nil && !ok {
			cur.Decision = "timed-out"
			r.event(fmt.Sprintf("approval of %s timed out after %s: %s", e.Name, e.Approval.Timeout, orDefault(e.Approval.OnTimeout, release.OnTimeoutAbort)))
			switch e.Approval.OnTimeout {
			case release.OnTimeoutProceed:
				return nil, nil, false
			case release.OnTimeoutRollback:
				st, err := r.rollBackEarlier(ctx, e.Name, "approval of "+e.Name+" timed out")
				return st, err, true
			default:
				st, err := r.end(ctx, ReleaseFailed, "approval of "+e.Name+" timed out")
				return st, err, true
			}
		}
	} else {
		err = workflow.Await(ctx, decided)
	}
	if err != nil {
		return nil, err, true
	}
	cur.By, cur.Reason = r.decision.By, r.decision.Reason
	if !r.approved {
		cur.Decision = "rejected"
		st, err := r.end(ctx, ReleaseRejected, fmt.Sprintf("%s rejected by %s: %s", e.Name, orUnknown(r.decision.By), r.decision.Reason))
		return st, err, true
	}
	cur.Decision = "approved"
	return nil, nil, false
}

// announce tells the release's alert channels, at once and best effort: a
// channel that is down is retried a little and never changes the release.
func (r *releaseRun) announce(ctx workflow.Context, env, summary, detail string) {
	if len(r.in.Alerts) == 0 {
		return
	}
	to := &spec.Service{Name: r.in.Name, Environment: env, Alerts: r.in.Alerts}
	in := incident.Incident{Key: incident.Key(r.in.Name, env, "approval"), Service: r.in.Name, Environment: env,
		Check: "approval", Summary: summary, Detail: detail, OpenedAt: workflow.Now(ctx)}
	var ns []activities.NotifyInput
	for c := range r.in.Alerts {
		ns = append(ns, activities.NotifyInput{Spec: to, Channel: c, Action: incident.Event, In: in})
	}
	notify(ctx, ns)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// childResult is how one child Deployment ended.
type childResult struct {
	service string
	err     error
}

// deploy runs an environment's services level by level as held child
// Deployments. Once all promoted, it lets them retire their old slots; if
// one fails, it rolls back the ones that promoted, in reverse order.
func (r *releaseRun) deploy(ctx workflow.Context, e *ReleaseEnvironment) (*ReleaseStatus, error, bool) {
	r.setPhase(ctx, ReleaseDeploying)
	r.promoted = map[string]ServicePromoted{}
	var order []string // services in the order they promoted
	futures := map[string]workflow.ChildWorkflowFuture{}
	var started []string
	promotedCh := workflow.GetSignalChannel(ctx, ServicePromotedSignal)
	results := workflow.NewChannel(ctx)
	var failure *childResult
	r.current = e.Name
	for li, level := range e.Levels {
		if err := r.thaw(ctx); err != nil {
			return nil, err, true
		}
		r.event(fmt.Sprintf("%s level %d: %s", e.Name, li+1, strings.Join(level, ", ")))
		waiting := map[string]bool{}
		for _, svc := range level {
			f := r.startChild(ctx, e, svc)
			futures[svc], started = f, append(started, svc)
			r.running = append(r.running, svc)
			waiting[svc] = true
			workflow.Go(ctx, func(gctx workflow.Context) {
				err := f.Get(gctx, nil)
				results.Send(gctx, childResult{svc, err})
			})
		}
		for len(waiting) > 0 && failure == nil {
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(promotedCh, func(c workflow.ReceiveChannel, _ bool) {
				var p ServicePromoted
				c.Receive(ctx, &p)
				if p.Environment != e.Name || !waiting[p.Service] {
					return
				}
				delete(waiting, p.Service)
				r.running = slices.DeleteFunc(r.running, func(s string) bool { return s == p.Service })
				r.promoted[p.Service] = p
				order = append(order, p.Service)
				s := r.service(p.Service, e.Name)
				s.Phase, s.PreviousVersion, s.First = "promoted", p.PreviousVersion, p.First
				r.event(fmt.Sprintf("%s promoted %s in %s (previous %s)", p.Service, p.Version, e.Name, orUnknown(p.PreviousVersion)))
			})
			sel.AddReceive(results, func(c workflow.ReceiveChannel, _ bool) {
				var res childResult
				c.Receive(ctx, &res)
				s := r.service(res.service, e.Name)
				if res.err == nil {
					// a first deployment holds nothing: it ends promoted at
					// once; one that ended without telling the release
					// promoted too, and holds nothing either
					s.Phase = "done"
					if waiting[res.service] {
						delete(waiting, res.service)
						r.running = slices.DeleteFunc(r.running, func(s string) bool { return s == res.service })
						s.First, s.Reason = true, "ended without holding its old slot"
					}
					return
				}
				s.Phase, s.Reason = "failed", rootMessage(res.err)
				if kind := EndingOf(res.err); kind == ErrRolledBack {
					s.Phase = "rolled-back"
				}
				delete(waiting, res.service)
				r.running = slices.DeleteFunc(r.running, func(s string) bool { return s == res.service })
				if failure == nil {
					failure = &res
				}
			})
			sel.Select(ctx)
		}
		if failure != nil {
			break
		}
	}
	if failure != nil {
		st, err := r.undo(ctx, e, failure.service, order, started, futures)
		return st, err, true
	}
	for _, svc := range order {
		_ = workflow.SignalExternalWorkflow(ctx, DeploymentID(svc, e.Name), "", ReleaseDone, nil).Get(ctx, nil)
	}
	for _, svc := range started {
		var out Status
		err := futures[svc].Get(ctx, &out)
		s := r.service(svc, e.Name)
		if err != nil {
			s.Phase, s.Reason = "failed", rootMessage(err)
			continue
		}
		s.Phase, s.Schema = "done", out.Schema
	}
	r.event("environment " + e.Name + " promoted")
	return nil, nil, false
}

// undo rolls an environment back as a unit after a service failed: the
// children still running are aborted, the promoted ones (held warm) roll
// back in the reverse of the order they promoted.
func (r *releaseRun) undo(ctx workflow.Context, e *ReleaseEnvironment, failed string, order, started []string,
	futures map[string]workflow.ChildWorkflowFuture) (*ReleaseStatus, error) {
	reason := fmt.Sprintf("%s in %s: %s", failed, e.Name, r.service(failed, e.Name).Reason)
	r.setPhase(ctx, ReleaseRollingBack)
	r.event("rolling back the environment as a unit: " + reason)
	// the children still running are stopped too (they roll back or fail)
	for _, svc := range started {
		if _, ok := r.promoted[svc]; !ok && svc != failed {
			_ = workflow.SignalExternalWorkflow(ctx, DeploymentID(svc, e.Name), "", Abort,
				AbortRequest{Reason: "release " + r.in.Name + ": " + reason, By: "release"}).Get(ctx, nil)
		}
	}
	for i := len(order) - 1; i >= 0; i-- {
		svc := order[i]
		s := r.service(svc, e.Name)
		if s.First {
			s.Phase, s.Reason = "done", "first deployment: nothing to go back to"
			continue
		}
		err := workflow.SignalExternalWorkflow(ctx, DeploymentID(svc, e.Name), "", Abort,
			AbortRequest{Reason: "release " + r.in.Name + ": " + reason, By: "release"}).Get(ctx, nil)
		if err == nil {
			err = futures[svc].Get(ctx, nil)
		}
		if EndingOf(err) == ErrRolledBack {
			s.Phase, s.Reason = "rolled-back", "back on "+s.PreviousVersion
			r.event(fmt.Sprintf("%s rolled back to %s in %s", svc, s.PreviousVersion, e.Name))
		} else {
			s.Phase, s.Reason = "failed", "rollback: "+rootMessage(errOr(err, "the rollout ended promoted"))
		}
	}
	// wait for every child, so none is left behind the release
	for _, svc := range started {
		err := futures[svc].Get(ctx, nil)
		if s := r.service(svc, e.Name); s.Phase == "deploying" {
			s.Phase, s.Reason = "aborted", "stopped with the release"
			if err != nil {
				s.Reason = rootMessage(err)
			}
		}
	}
	return r.end(ctx, ReleaseRolledBack, reason)
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}

func (r *releaseRun) startChild(ctx workflow.Context, e *ReleaseEnvironment, svc string) workflow.ChildWorkflowFuture {
	s := r.service(svc, e.Name)
	s.Phase = "deploying"
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID: DeploymentID(svc, e.Name),
		// a release cancelled from the Web UI cancels its rollouts, which
		// roll back rather than leave traffic split
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		TypedSearchAttributes: temporal.NewSearchAttributes(append(RunAttributes(svc, e.Name, r.in.Versions[svc], rollout.PhaseValidating, 0),
			SARelease.ValueSet(r.in.Name))...),
	})
	r.event(fmt.Sprintf("deploying %s %s to %s", svc, r.in.Versions[svc], e.Name))
	return workflow.ExecuteChildWorkflow(cctx, DeploymentWorkflow, DeploymentInput{
		Spec: e.Specs[svc], Version: r.in.Versions[svc], By: "release " + r.in.Name, Release: r.in.Name, Hold: true, Emergency: r.in.Emergency})
}

// rollBackEarlier ends a release whose approval timed out with rollback:
// the environments before this one get their previous versions again.
func (r *releaseRun) rollBackEarlier(ctx workflow.Context, env, reason string) (*ReleaseStatus, error) {
	r.setPhase(ctx, ReleaseRollingBack)
	for i := len(r.in.Environments) - 1; i >= 0; i-- {
		e := &r.in.Environments[i]
		if e.Name == env {
			continue
		}
		for li := len(e.Levels) - 1; li >= 0; li-- {
			for _, svc := range e.Levels[li] {
				s := r.service(svc, e.Name)
				if s.Phase != "done" || s.First || s.PreviousVersion == "" {
					continue
				}
				cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
					WorkflowID:        DeploymentID(svc, e.Name),
					ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
					TypedSearchAttributes: temporal.NewSearchAttributes(append(RunAttributes(svc, e.Name, s.PreviousVersion, rollout.PhaseValidating, 0),
						SARelease.ValueSet(r.in.Name))...),
				})
				r.event(fmt.Sprintf("redeploying %s %s to %s", svc, s.PreviousVersion, e.Name))
				err := workflow.ExecuteChildWorkflow(cctx, DeploymentWorkflow, DeploymentInput{
					Spec: e.Specs[svc], Version: s.PreviousVersion, By: "release " + r.in.Name + " rollback", Release: r.in.Name}).Get(ctx, nil)
				if err != nil {
					s.Phase, s.Reason = "failed", "redeploying "+s.PreviousVersion+": "+rootMessage(err)
					continue
				}
				s.Phase, s.Reason = "rolled-back", "redeployed "+s.PreviousVersion
			}
		}
	}
	return r.end(ctx, ReleaseRolledBack, reason)
}
