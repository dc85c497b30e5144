package worker

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// A worker killed with an activity in flight (SIGKILL, OOM) leaves the
// attempt "started" until its heartbeat or start-to-close timeout runs out
// (3 s and more), and the rollout waits that long for a retry. A worker
// starting on the same host fails such attempts at once, so they are retried
// now: their owner's identity names its pid, host and pid namespace, and a
// pid that no longer exists in the same namespace on the same host is a
// worker that is gone for sure. Attempts of workers elsewhere are left to
// their timeouts.

// identity is this process's worker identity: pid@host@pid-namespace.
func identity() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%d@%s@%s", os.Getpid(), host, pidNamespace())
}

func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return "unknown"
	}
	return ns
}

// gone says whether the worker with this identity was a process on this
// host, in this pid namespace, that no longer exists.
func gone(id string) bool {
	parts := strings.SplitN(id, "@", 3)
	host, _ := os.Hostname()
	if len(parts) != 3 || parts[1] != host || parts[2] != pidNamespace() || parts[2] == "unknown" {
		return false
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// takeOver fails the started activity attempts of the running workflows on
// the task queue whose worker is gone, and returns how many. It also resets
// each one's sticky queue: a dead worker's holds the next workflow task for
// the sticky schedule-to-start timeout (1 s) before any other worker may
// take it; a live worker only replays the workflow once.
func takeOver(ctx context.Context, c client.Client, cfg Config) (int, error) {
	ns := cfg.Namespace
	if ns == "" {
		ns = "default"
	}
	if strings.ContainsAny(cfg.TaskQueue, `'"\`) {
		return 0, nil // cannot be quoted in a visibility query; timeouts still apply
	}
	q := fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus = 'Running'", cfg.TaskQueue)
	n := 0
	var token []byte
	for {
		page, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: ns, Query: q, NextPageToken: token})
		if err != nil {
			return n, fmt.Errorf("worker: list running workflows on %s: %w", cfg.TaskQueue, err)
		}
		for _, wf := range page.Executions {
			id, run := wf.GetExecution().GetWorkflowId(), wf.GetExecution().GetRunId()
			_, _ = c.WorkflowService().ResetStickyTaskQueue(ctx, &workflowservice.ResetStickyTaskQueueRequest{Namespace: ns, Execution: wf.GetExecution()})
			d, err := c.DescribeWorkflowExecution(ctx, id, run)
			if err != nil {
				continue
			}
			for _, pa := range d.PendingActivities {
				if pa.State != enumspb.PENDING_ACTIVITY_STATE_STARTED || !gone(pa.LastWorkerIdentity) {
					continue
				}
				// retried now, not after the retry policy's backoff
				lost := temporal.NewApplicationErrorWithOptions(fmt.Sprintf("the worker running it (%s) is gone", pa.LastWorkerIdentity), "WorkerLost",
					temporal.ApplicationErrorOptions{NextRetryDelay: time.Millisecond})
				if err := c.CompleteActivityByID(ctx, ns, id, run, pa.ActivityId, nil, lost); err == nil {
					n++
				}
			}
		}
		if token = page.NextPageToken; len(token) == 0 {
			return n, nil
		}
	}
}
