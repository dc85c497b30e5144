package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// One writer per service and environment, enforced by the Temporal server:
// a Deployment or a Rollback first starts ServiceLock as its child under
// the one ID LockID(service, env). The server refuses a second child with
// that ID while the first runs, whichever client started the writers, and
// terminates the lock when its parent closes (ParentClosePolicy TERMINATE),
// so a writer that ends any way at all, even terminated, frees its service.

// ServiceLockWorkflow is the lock's workflow type.
const ServiceLockWorkflow = "ServiceLock"

// LockID is the workflow ID of a service's writer lock in one environment.
func LockID(service, env string) string { return "lock/" + service + "/" + env }

// ServiceLock holds a service for its parent: it runs until the parent closes.
func ServiceLock(ctx workflow.Context, holder string) error {
	return workflow.Await(ctx, func() bool { return false })
}

// holdService takes the service's lock for this run, trying for up to wait
// (a rollback taking over from the rollout it aborted waits the moment that
// rollout needs to close); it fails with ErrLocked when another holds it.
func holdService(ctx workflow.Context, service, env string, wait time.Duration) error {
	me := workflow.GetInfo(ctx).WorkflowExecution.ID
	deadline := workflow.Now(ctx).Add(wait)
	for {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            LockID(service, env),
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_TERMINATE,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			// the lock never runs a task that matters, but must not be lost
			WorkflowRunTimeout: 0,
		})
		var started workflow.Execution
		err := workflow.ExecuteChildWorkflow(cctx, ServiceLockWorkflow, me).GetChildWorkflowExecution().Get(ctx, &started)
		if err == nil {
			return nil
		}
		var taken *temporal.ChildWorkflowExecutionAlreadyStartedError
		if !errors.As(err, &taken) {
			return err
		}
		if !workflow.Now(ctx).Before(deadline) {
			return ErrLocked.end(fmt.Sprintf(
				"another rollout or rollback of %s in %s is running (it holds %s): wait for it, or abort it",
				service, env, LockID(service, env)))
		}
		if err := workflow.Sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}
