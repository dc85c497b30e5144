package activities

import (
	"context"
	"errors"
	"fmt"
	"sync"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/switchyard/switchyard/internal/spec"
)

// A rollout's spec is in its history once, in the workflow's input. Its
// activities are not given it again (it would be written into the history
// with every one of them: ~2.5 KB each); each reads it from the input of
// the run that scheduled it, once per run and worker, and keeps it.

// specCache holds the specs of the runs this worker has served lately,
// with who the server verified started each (read from the same event).
type specCache struct {
	mu    sync.Mutex
	byRun map[string]cachedRun
	order []string // oldest first, for a bounded size
}

type cachedRun struct {
	spec      *spec.Service
	startedBy string
}

// specCacheSize bounds the specs kept: a worker serving more runs at once
// than this reads some inputs again, which costs a round trip, not correctness.
const specCacheSize = 2000

func (c *specCache) get(run string) (cachedRun, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.byRun[run]
	return r, ok
}

func (c *specCache) put(run string, r cachedRun) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byRun == nil {
		c.byRun = map[string]cachedRun{}
	}
	if _, ok := c.byRun[run]; ok {
		return
	}
	c.byRun[run] = r
	c.order = append(c.order, run)
	if len(c.order) > specCacheSize {
		delete(c.byRun, c.order[0])
		c.order = c.order[1:]
	}
}

// runInput is the part every Switchyard workflow input shares.
type runInput struct {
	Spec *spec.Service `json:"spec"`
}

// spec returns the spec an activity works on: the one it was given (older
// histories, the Retire workflow, tests), else its run's.
func (a *Activities) spec(ctx context.Context, given *spec.Service) (*spec.Service, error) {
	if given != nil {
		return given, a.admit(given)
	}
	key := runKey(ctx)
	if r, ok := a.specs.get(key); ok {
		return r.spec, nil
	}
	if a.Client == nil {
		return nil, badInput(errors.New("the activity was given no spec and the worker has no Temporal client to read its run's"))
	}
	first, err := a.startEvent(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the spec of run %s: %w", key, err)
	}
	if first.GetWorkflowExecutionStartedEventAttributes() == nil {
		return nil, badInput(fmt.Errorf("read the spec of run %s: its history does not start with the workflow's input", key))
	}
	var in runInput
	payloads := first.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	if len(payloads) == 0 {
		return nil, badInput(fmt.Errorf("read the spec of run %s: the workflow had no input", key))
	}
	if err := converter.GetDefaultDataConverter().FromPayload(payloads[0], &in); err != nil || in.Spec == nil {
		return nil, badInput(fmt.Errorf("read the spec of run %s: its input holds no spec (%v)", key, err))
	}
	if err := a.admit(in.Spec); err != nil {
		return nil, err
	}
	a.specs.put(key, cachedRun{spec: in.Spec, startedBy: principalOf(first)})
	return in.Spec, nil
}

// admit validates a spec again and holds it to the worker's policy: the
// spec came from whichever client started the run, and is code (its
// commands run here, its secret names are read here).
func (a *Activities) admit(s *spec.Service) error {
	if err := s.Validate(); err != nil {
		return badInput(fmt.Errorf("the worker refuses the spec of %s: %w", s.Name, err))
	}
	if ps := a.Reach.Check(s); len(ps) > 0 {
		return badInput(fmt.Errorf("the worker refuses the spec of %s:\n%w", s.Name, ps))
	}
	s.Reach = a.Reach
	return nil
}

// startedBy is the principal the Temporal server verified for the call
// that started this activity's run ("jwt:ci@example.com"), or "" when the
// server records none (no authorizer, or principal propagation off). The
// name a client types (--by, SWITCHYARD_ACTOR) is a claim; this is not.
func (a *Activities) startedBy(ctx context.Context) string {
	if a == nil {
		return ""
	}
	if r, ok := a.specs.get(runKey(ctx)); ok {
		return r.startedBy
	}
	if a.Client == nil {
		return ""
	}
	first, err := a.startEvent(ctx)
	if err != nil {
		return ""
	}
	return principalOf(first)
}

func runKey(ctx context.Context) string {
	we := activity.GetInfo(ctx).WorkflowExecution
	return we.ID + "/" + we.RunID
}

// startEvent reads the first event of the activity's run: its start (nil
// for a history with no event).
func (a *Activities) startEvent(ctx context.Context) (*historypb.HistoryEvent, error) {
	we := activity.GetInfo(ctx).WorkflowExecution
	resp, err := a.Client.WorkflowService().GetWorkflowExecutionHistory(ctx, &workflowservice.GetWorkflowExecutionHistoryRequest{
		Namespace:              activity.GetInfo(ctx).WorkflowNamespace,
		Execution:              &commonpb.WorkflowExecution{WorkflowId: we.ID, RunId: we.RunID},
		MaximumPageSize:        1,
		HistoryEventFilterType: enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT,
	})
	if err != nil {
		return nil, err
	}
	if len(resp.GetHistory().GetEvents()) == 0 {
		return nil, nil
	}
	return resp.GetHistory().GetEvents()[0], nil
}

// principalOf is an event's verified principal as "type:name", "" for none.
func principalOf(ev *historypb.HistoryEvent) string {
	if p := ev.GetPrincipal(); p.GetName() != "" {
		return p.GetType() + ":" + p.GetName()
	}
	return ""
}

// StartedBy returns who the Temporal server verified started the calling
// run (see startedBy), for workflows that have no other activity to ask.
func (a *Activities) StartedBy(ctx context.Context) (string, error) { return a.startedBy(ctx), nil }
