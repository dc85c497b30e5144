// Package worker wires Switchyard's workflows and activities to a Temporal
// worker.
package worker

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/switchyard/switchyard/activities"
	"github.com/switchyard/switchyard/internal/router"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/workflows"
)

// Config is what a worker needs besides its client.
type Config struct {
	TaskQueue string
	Namespace string
	// StateDir is where an embedded router keeps its saved config.
	StateDir string
	// Embedded is the in-process Caddy for router kind embedded; nil makes
	// one in StateDir. Caddy's config is process-wide, so workers in one
	// process (tests) share one.
	Embedded *router.Embedded
	// StickyCacheSize bounds the workflows this process keeps in memory
	// between tasks (0: the SDK's 10,000); an evicted one is replayed from
	// its history when it next runs, so the bound costs CPU, never correctness.
	StickyCacheSize int
	// MaxConcurrentActivities bounds the activities run at once (0: the SDK's 1,000).
	MaxConcurrentActivities int
	// BuildID, when set, runs the worker as this version of a Temporal
	// Worker Deployment (DeploymentName, default the task queue):
	// rollouts and rollbacks are pinned to the build that started them, so a
	// new build with changed workflow code never replays a running one;
	// monitors, releases, freezes and retires move to the current build.
	// Empty: an unversioned worker.
	BuildID        string
	DeploymentName string
	// Reach is the policy every spec is held to (nil: none).
	Reach *spec.Reach
	// Logf reports what Run does about the deployment's current version.
	Logf func(format string, args ...any)
}

// New returns a worker with every workflow and activity registered.
func New(c client.Client, cfg Config) sdkworker.Worker {
	if cfg.TaskQueue == "" {
		cfg.TaskQueue = workflows.TaskQueue
	}
	if cfg.StickyCacheSize > 0 {
		// process-wide, and only before the first worker starts
		sdkworker.SetStickyWorkflowCacheSize(cfg.StickyCacheSize)
	}
	opts := sdkworker.Options{
		MaxConcurrentActivityExecutionSize: cfg.MaxConcurrentActivities,
		// a worker that died leaves its workflows' next task on its sticky
		// queue for this long before any other worker may take it (SDK
		// default 5 s): a restarted worker moves a rollout on within ~1 s
		StickyScheduleToStartTimeout: time.Second,
		// pid, host and pid namespace: a worker restarted here can tell
		// that this one is gone (lost.go)
		Identity: identity(),
	}
	pinned := workflow.VersioningBehaviorUnspecified
	if cfg.BuildID != "" {
		opts.DeploymentOptions = sdkworker.DeploymentOptions{UseVersioning: true,
			Version:                   sdkworker.WorkerDeploymentVersion{DeploymentName: cfg.deploymentName(), BuildID: cfg.BuildID},
			DefaultVersioningBehavior: workflow.VersioningBehaviorAutoUpgrade}
		pinned = workflow.VersioningBehaviorPinned
	}
	w := sdkworker.New(c, cfg.TaskQueue, opts)
	// a rollout or rollback finishes on the code that started it; the
	// others are short or long-lived and guard their changes with GetVersion
	w.RegisterWorkflowWithOptions(workflows.Deployment, workflow.RegisterOptions{Name: workflows.DeploymentWorkflow, VersioningBehavior: pinned})
	w.RegisterWorkflowWithOptions(workflows.Rollback, workflow.RegisterOptions{Name: workflows.RollbackWorkflow, VersioningBehavior: pinned})
	w.RegisterWorkflowWithOptions(workflows.ServiceLock, workflow.RegisterOptions{Name: workflows.ServiceLockWorkflow})
	w.RegisterWorkflowWithOptions(workflows.Retire, workflow.RegisterOptions{Name: workflows.RetireWorkflow})
	w.RegisterWorkflowWithOptions(workflows.Monitor, workflow.RegisterOptions{Name: workflows.MonitorWorkflow})
	w.RegisterWorkflowWithOptions(workflows.Release, workflow.RegisterOptions{Name: workflows.ReleaseWorkflow})
	w.RegisterWorkflowWithOptions(workflows.Freeze, workflow.RegisterOptions{Name: workflows.FreezeWorkflow})
	w.RegisterWorkflowWithOptions(workflows.Guard, workflow.RegisterOptions{Name: workflows.GuardWorkflow})
	if cfg.Embedded == nil {
		cfg.Embedded = router.NewEmbedded(filepath.Join(cfg.StateDir, "router"))
	}
	w.RegisterActivity(&activities.Activities{Embedded: cfg.Embedded, Client: c, Reach: cfg.Reach})
	return w
}

// Run registers the search attributes, resumes the embedded router from its
// saved config (so a restarted worker serves at once, not at the next
// activity), then runs a worker until ctx ends, and stops the router.
func Run(ctx context.Context, c client.Client, cfg Config) error {
	// first: the retries it causes are waiting by the time this worker polls
	if n, err := takeOver(ctx, c, cfg); err != nil {
		logf(cfg)("%v", err)
	} else if n > 0 {
		logf(cfg)("retried at once %d activity attempt(s) of a worker on this host that is gone", n)
	}
	if err := EnsureSearchAttributes(ctx, c, cfg.Namespace); err != nil {
		return err
	}
	if cfg.Embedded == nil {
		cfg.Embedded = router.NewEmbedded(filepath.Join(cfg.StateDir, "router"))
		defer cfg.Embedded.Stop()
	}
	if err := cfg.Embedded.Resume(ctx); err != nil {
		return err
	}
	w := New(c, cfg)
	if err := w.Start(); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	if cfg.BuildID != "" {
		if err := firstBuildIsCurrent(ctx, c, cfg); err != nil {
			w.Stop()
			return err
		}
	}
	<-ctx.Done()
	w.Stop()
	return nil
}

func logf(cfg Config) func(string, ...any) {
	if cfg.Logf == nil {
		return func(string, ...any) {}
	}
	return cfg.Logf
}

func (cfg Config) deploymentName() string {
	if cfg.DeploymentName != "" {
		return cfg.DeploymentName
	}
	if cfg.TaskQueue != "" {
		return cfg.TaskQueue
	}
	return workflows.TaskQueue
}

// firstBuildIsCurrent makes this build the deployment's current version
// when it has none (the first build ever started), so a new installation
// needs no extra step. A later build only says how to make it current:
// that is the operator's decision (switchyard worker current).
func firstBuildIsCurrent(ctx context.Context, c client.Client, cfg Config) error {
	logf := logf(cfg)
	name := cfg.deploymentName()
	h := c.WorkerDeploymentClient().GetHandle(name)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		// the server learns of this version from the worker's first polls
		d, err := h.Describe(ctx, client.WorkerDeploymentDescribeOptions{})
		if err == nil {
			if cur := d.Info.RoutingConfig.CurrentVersion; cur != nil {
				if cur.BuildID == cfg.BuildID {
					logf("build %s is the current version of worker deployment %s", cfg.BuildID, name)
				} else {
					logf("build %s runs beside the current build %s of worker deployment %s: running rollouts stay on the build that started them, new ones start on %s; make this build current with: switchyard worker current %s --task-queue %s",
						cfg.BuildID, cur.BuildID, name, cur.BuildID, cfg.BuildID, cfg.TaskQueue)
				}
				return nil
			}
			_, err = h.SetCurrentVersion(ctx, client.WorkerDeploymentSetCurrentVersionOptions{BuildID: cfg.BuildID, ConflictToken: d.ConflictToken})
			if err == nil {
				logf("build %s is now the current version of worker deployment %s (its first build)", cfg.BuildID, name)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("worker: make build %s the current version of worker deployment %s: %w", cfg.BuildID, name, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// EnsureSearchAttributes adds the Switchyard search attributes the namespace
// lacks. Adding one that exists is not an error.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	if namespace == "" {
		namespace = "default"
	}
	list, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("worker: list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range workflows.SearchAttributes {
		if _, ok := list.CustomAttributes[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) && !strings.Contains(err.Error(), "already") {
		return fmt.Errorf("worker: register search attributes in namespace %s: %w", namespace, err)
	}
	return nil
}
