package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/switchyard/switchyard/internal/awsapi"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// ECS runs each slot as an Amazon ECS service (ecs.services), each behind
// its own target group (router.alb.targetGroups). Provision registers a
// task definition revision running the version's image, points the slot's
// service at it and waits for steady state: the deployment COMPLETED, its
// tasks all running, and as many healthy targets in the slot's target
// group. Retire scales the slot's service to 0.
type ECS struct {
	svc *spec.Service
	ecs *ecs.Client
	elb *elb.Client
	// Poll is how often a deployment is read while it settles (default 5 s).
	Poll time.Duration
}

// NewECS returns the ecs platform for a resolved spec, on the worker's AWS credentials.
func NewECS(s *spec.Service) (*ECS, error) {
	cfg, err := awsapi.Config(context.Background(), s.ECS.Region)
	if err != nil {
		return nil, err
	}
	return &ECS{svc: s, ecs: ecs.NewFromConfig(cfg), elb: elb.NewFromConfig(cfg), Poll: 5 * time.Second}, nil
}

func (e *ECS) image(version string) string { return e.svc.ECS.Image + ":" + version }

// Build has nothing to build: the image is built and pushed to the
// registry by the build command (or CI); the artifact is its tag.
func (e *ECS) Build(_ context.Context, version string, _ func(string)) (string, error) {
	return e.image(version), nil
}

// Gates: ECS has no built-in checks of the image; the spec's gates run.
func (e *ECS) Gates(context.Context, string) ([]rollout.CheckResult, error) { return nil, nil }

// Provision makes the slot's service run the version.
func (e *ECS) Provision(ctx context.Context, slot rollout.Slot, version, _ string, heartbeat func(string)) (Instance, error) {
	if heartbeat == nil {
		heartbeat = func(string) {}
	}
	c := e.svc.ECS
	name, image := c.Services.Of(string(slot)), e.image(version)
	in := Instance{Slot: slot, Addr: e.svc.SlotAddrs(string(slot))[0], Version: version, Artifact: image}
	cur, err := e.service(ctx, name)
	if err != nil {
		return in, err
	}
	td, err := e.taskDefinition(ctx, aws.ToString(cur.TaskDefinition))
	if err != nil {
		return in, err
	}
	// the same version asked for again (a retry, a resumed rollout): wait for it, register nothing
	if containerImage(td, c.Container) == image && cur.DesiredCount == int32(c.DesiredCount) {
		in.Running, in.Reattached = true, true
		return in, e.steady(ctx, slot, name, aws.ToString(td.TaskDefinitionArn), heartbeat)
	}
	env, err := slotEnv(e.svc, slot, version)
	if err != nil {
		return in, err
	}
	reg, err := e.revision(td, image, env)
	if err != nil {
		return in, err
	}
	out, err := e.ecs.RegisterTaskDefinition(ctx, reg)
	if err != nil {
		return in, awsapi.Explain("ecs", "ecs:RegisterTaskDefinition", err)
	}
	arn := aws.ToString(out.TaskDefinition.TaskDefinitionArn)
	heartbeat(fmt.Sprintf("registered %s for %s", arn, version))
	if _, err := e.ecs.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String(c.Cluster), Service: aws.String(name),
		TaskDefinition: aws.String(arn), DesiredCount: aws.Int32(int32(c.DesiredCount))}); err != nil {
		return in, awsapi.Explain("ecs", "ecs:UpdateService", err)
	}
	in.Running = true
	return in, e.steady(ctx, slot, name, arn, heartbeat)
}

// revision is the task definition to register for the image: the spec's
// template, else the service's current revision, with the container's
// image and the slot's environment set.
func (e *ECS) revision(cur *ecstypes.TaskDefinition, image string, env []string) (*ecs.RegisterTaskDefinitionInput, error) {
	c := e.svc.ECS
	in := &ecs.RegisterTaskDefinitionInput{}
	if c.TaskDefinition != "" {
		path := c.TaskDefinition
		if !filepath.IsAbs(path) {
			path = filepath.Join(e.svc.Dir, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, &BadInputError{fmt.Errorf("ecs: ecs.taskDefinition: %w", err)}
		}
		if err := json.Unmarshal(b, in); err != nil {
			return nil, &BadInputError{fmt.Errorf("ecs: ecs.taskDefinition %s: %w", c.TaskDefinition, err)}
		}
	} else {
		*in = ecs.RegisterTaskDefinitionInput{Family: cur.Family, ContainerDefinitions: cur.ContainerDefinitions, Cpu: cur.Cpu, Memory: cur.Memory,
			NetworkMode: cur.NetworkMode, RequiresCompatibilities: cur.RequiresCompatibilities, TaskRoleArn: cur.TaskRoleArn,
			ExecutionRoleArn: cur.ExecutionRoleArn, Volumes: cur.Volumes, PlacementConstraints: cur.PlacementConstraints,
			RuntimePlatform: cur.RuntimePlatform, EphemeralStorage: cur.EphemeralStorage, PidMode: cur.PidMode, IpcMode: cur.IpcMode}
	}
	found := false
	for i := range in.ContainerDefinitions {
		cd := &in.ContainerDefinitions[i]
		if aws.ToString(cd.Name) != c.Container {
			continue
		}
		found = true
		cd.Image = aws.String(image)
		// the slot's variables replace the template's of the same name
		set := map[string]bool{}
		for _, kv := range env {
			k, _, _ := strings.Cut(kv, "=")
			set[k] = true
		}
		var vars []ecstypes.KeyValuePair
		for _, kv := range cd.Environment {
			if !set[aws.ToString(kv.Name)] {
				vars = append(vars, kv)
			}
		}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			vars = append(vars, ecstypes.KeyValuePair{Name: aws.String(k), Value: aws.String(v)})
		}
		cd.Environment = vars
	}
	if !found {
		return nil, &BadInputError{fmt.Errorf("ecs: ecs.container: the task definition %s has no container %q", aws.ToString(in.Family), c.Container)}
	}
	return in, nil
}

// steady waits for the slot's service to run the revision: the deployment
// COMPLETED with all its tasks running and as many healthy targets in the
// slot's target group. A deployment the circuit breaker rolled back, or
// one still not steady at ecs.timeout, fails with the service's events.
func (e *ECS) steady(ctx context.Context, slot rollout.Slot, name, arn string, heartbeat func(string)) error {
	c := e.svc.ECS
	deadline := time.Now().Add(c.Timeout.D())
	tg := e.svc.Router.ALB.TargetGroups.Of(string(slot))
	state := "not started"
	for {
		s, err := e.service(ctx, name)
		if err != nil {
			return err
		}
		var dep *ecstypes.Deployment
		for i := range s.Deployments {
			if aws.ToString(s.Deployments[i].TaskDefinition) == arn {
				dep = &s.Deployments[i]
			}
		}
		switch {
		case dep == nil:
			state = "the service has no deployment of " + arn
		case dep.RolloutState == ecstypes.DeploymentRolloutStateFailed:
			return &BadInputError{fmt.Errorf("ecs: slot %s: the deployment of %s failed (%s); the service's events:\n%s",
				slot, arn, aws.ToString(dep.RolloutStateReason), events(s, 5))}
		default:
			state = fmt.Sprintf("rollout %s, %d of %d tasks running", strings.ToLower(string(dep.RolloutState)), dep.RunningCount, dep.DesiredCount)
			if dep.RolloutState == ecstypes.DeploymentRolloutStateCompleted && dep.RunningCount == dep.DesiredCount {
				healthy, err := e.healthy(ctx, tg)
				if err != nil {
					return err
				}
				state += fmt.Sprintf(", %d healthy targets", healthy)
				if healthy >= int(dep.DesiredCount) {
					return nil
				}
			}
		}
		heartbeat(fmt.Sprintf("slot %s (%s): %s", slot, name, state))
		if time.Now().After(deadline) {
			return fmt.Errorf("ecs: slot %s: %s not steady after %s (ecs.timeout): %s; the service's events:\n%s", slot, name, c.Timeout, state, events(s, 5))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(e.Poll):
		}
	}
}

// healthy counts the target group's healthy targets.
func (e *ECS) healthy(ctx context.Context, tg string) (int, error) {
	out, err := e.elb.DescribeTargetHealth(ctx, &elb.DescribeTargetHealthInput{TargetGroupArn: aws.String(tg)})
	if err != nil {
		return 0, awsapi.Explain("ecs", "elasticloadbalancing:DescribeTargetHealth", err)
	}
	n := 0
	for _, d := range out.TargetHealthDescriptions {
		if d.TargetHealth != nil && d.TargetHealth.State == elbtypes.TargetHealthStateEnumHealthy {
			n++
		}
	}
	return n, nil
}

func (e *ECS) service(ctx context.Context, name string) (*ecstypes.Service, error) {
	out, err := e.ecs.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(e.svc.ECS.Cluster), Services: []string{name}})
	if err != nil {
		return nil, awsapi.Explain("ecs", "ecs:DescribeServices", err)
	}
	if len(out.Services) != 1 {
		why := "not found"
		if len(out.Failures) > 0 {
			why = aws.ToString(out.Failures[0].Reason)
		}
		return nil, &BadInputError{fmt.Errorf("ecs: service %s in cluster %s: %s (create one service per slot, each behind its target group)", name, e.svc.ECS.Cluster, why)}
	}
	return &out.Services[0], nil
}

func (e *ECS) taskDefinition(ctx context.Context, arn string) (*ecstypes.TaskDefinition, error) {
	out, err := e.ecs.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(arn)})
	if err != nil {
		return nil, awsapi.Explain("ecs", "ecs:DescribeTaskDefinition", err)
	}
	return out.TaskDefinition, nil
}

func containerImage(td *ecstypes.TaskDefinition, container string) string {
	for _, cd := range td.ContainerDefinitions {
		if aws.ToString(cd.Name) == container {
			return aws.ToString(cd.Image)
		}
	}
	return ""
}

// events is the service's newest n events, newest first.
func events(s *ecstypes.Service, n int) string {
	var b strings.Builder
	for i, ev := range s.Events {
		if i == n {
			break
		}
		fmt.Fprintf(&b, "  %s %s\n", aws.ToTime(ev.CreatedAt).UTC().Format(time.RFC3339), aws.ToString(ev.Message))
	}
	if b.Len() == 0 {
		return "  (none)"
	}
	return strings.TrimRight(b.String(), "\n")
}

// Inspect reports what the slot's service runs.
func (e *ECS) Inspect(ctx context.Context, slot rollout.Slot) (Instance, error) {
	name := e.svc.ECS.Services.Of(string(slot))
	in := Instance{Slot: slot, Addr: e.svc.SlotAddrs(string(slot))[0]}
	s, err := e.service(ctx, name)
	if err != nil {
		return in, err
	}
	td, err := e.taskDefinition(ctx, aws.ToString(s.TaskDefinition))
	if err != nil {
		return in, err
	}
	in.Artifact = containerImage(td, e.svc.ECS.Container)
	if v, ok := strings.CutPrefix(in.Artifact, e.svc.ECS.Image+":"); ok {
		in.Version = v
	}
	in.Running = s.DesiredCount > 0 && s.RunningCount > 0
	return in, nil
}

// Retire scales the slot's service to 0 tasks.
func (e *ECS) Retire(ctx context.Context, slot rollout.Slot) error {
	name := e.svc.ECS.Services.Of(string(slot))
	s, err := e.service(ctx, name)
	if err != nil {
		return err
	}
	if s.DesiredCount == 0 {
		return nil
	}
	if _, err := e.ecs.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: aws.String(e.svc.ECS.Cluster), Service: aws.String(name), DesiredCount: aws.Int32(0)}); err != nil {
		return awsapi.Explain("ecs", "ecs:UpdateService", err)
	}
	return nil
}

// Describe says what runs in a slot.
func (e *ECS) Describe(in Instance) string {
	return fmt.Sprintf("ECS service %s (%s)", e.svc.ECS.Services.Of(string(in.Slot)), in.Artifact)
}
