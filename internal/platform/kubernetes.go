package platform

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsapply "k8s.io/client-go/applyconfigurations/apps/v1"
	coreapply "k8s.io/client-go/applyconfigurations/core/v1"
	metaapply "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/switchyard/switchyard/internal/kube"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Labels and annotations on the objects the kubernetes platform writes.
const (
	KubeLabelName     = "app.kubernetes.io/name"
	KubeLabelManaged  = "app.kubernetes.io/managed-by"
	KubeLabelSlot     = "switchyard.io/slot"
	KubeLabelEnv      = "switchyard.io/environment"
	KubeLabelVersion  = "switchyard.io/version"
	KubeAnnotArtifact = "switchyard.io/artifact"
	fieldManager      = "switchyard"
)

// Kubernetes runs each slot as a Deployment and a Service named
// <service>-<slot>, written by server-side apply: applying the same spec
// twice changes nothing, and the API server keeps the state of record.
type Kubernetes struct {
	svc *spec.Service
	c   *kube.Clients
}

// NewKubernetes returns the kubernetes platform for a resolved spec.
func NewKubernetes(s *spec.Service) (*Kubernetes, error) {
	c, err := kube.For(s)
	if err != nil {
		return nil, &BadInputError{err}
	}
	return &Kubernetes{svc: s, c: c}, nil
}

// SlotName is the Deployment and Service of a slot.
func SlotName(s *spec.Service, slot rollout.Slot) string { return s.Name + "-" + string(slot) }

func (k *Kubernetes) explain(what string, err error) error { return k.c.Error(what, err) }

// Build: with docker.image the image is built and pushed on the Engine and
// runs by digest; otherwise kubernetes.image is run at the version's tag.
func (k *Kubernetes) Build(ctx context.Context, version string, heartbeat func(string)) (string, error) {
	if k.svc.Docker.Image != "" {
		d, err := NewDocker(k.svc)
		if err != nil {
			return "", err
		}
		return d.Build(ctx, version, heartbeat)
	}
	return k.svc.Kubernetes.Image + ":" + version, nil
}

// Gates: the docker image checks when an image was built here.
func (k *Kubernetes) Gates(ctx context.Context, artifact string) ([]rollout.CheckResult, error) {
	if k.svc.Docker.Image == "" {
		return nil, nil
	}
	d, err := NewDocker(k.svc)
	if err != nil {
		return nil, err
	}
	return d.Gates(ctx, artifact)
}

func (k *Kubernetes) selector(slot rollout.Slot) map[string]string {
	return map[string]string{KubeLabelName: k.svc.Name, KubeLabelEnv: k.svc.Environment, KubeLabelSlot: string(slot)}
}

// Inspect reads the slot's Deployment.
func (k *Kubernetes) Inspect(ctx context.Context, slot rollout.Slot) (Instance, error) {
	in := Instance{Slot: slot, Addr: k.svc.SlotAddrs(string(slot))[0]}
	d, err := k.c.Core.AppsV1().Deployments(k.svc.Kubernetes.Namespace).Get(ctx, SlotName(k.svc, slot), metav1.GetOptions{})
	if apierrors.IsNotFound(err) && !strings.Contains(err.Error(), "namespaces") {
		return in, nil
	}
	if err != nil {
		return in, k.explain("read deployment "+SlotName(k.svc, slot), err)
	}
	in.Version, in.Artifact = d.Labels[KubeLabelVersion], d.Annotations[KubeAnnotArtifact]
	in.Running = d.Spec.Replicas != nil && *d.Spec.Replicas > 0 && d.Status.AvailableReplicas > 0
	return in, nil
}

// Provision applies the slot's Deployment and Service, then waits for the
// rollout: the new ReplicaSet observed, updated and available.
func (k *Kubernetes) Provision(ctx context.Context, slot rollout.Slot, version, artifact string, heartbeat func(string)) (Instance, error) {
	if heartbeat == nil {
		heartbeat = func(string) {}
	}
	kc := k.svc.Kubernetes
	name := SlotName(k.svc, slot)
	in := Instance{Slot: slot, Addr: k.svc.SlotAddrs(string(slot))[0], Version: version, Artifact: artifact}
	deps := k.c.Core.AppsV1().Deployments(kc.Namespace)
	if cur, err := deps.Get(ctx, name, metav1.GetOptions{}); err == nil && cur.Labels[KubeLabelVersion] == version &&
		cur.Annotations[KubeAnnotArtifact] == artifact && cur.Spec.Replicas != nil && *cur.Spec.Replicas == int32(kc.Replicas) && ready(cur) {
		in.Running, in.Reattached = true, true
		return in, nil
	}
	labels := k.selector(slot)
	labels[KubeLabelManaged] = "switchyard"
	labels[KubeLabelVersion] = version
	container := coreapply.Container().WithName(k.svc.Name).WithImage(artifact).
		WithPorts(coreapply.ContainerPort().WithName("http").WithContainerPort(int32(kc.ContainerPort))).
		WithEnv(k.env(slot, version)...).
		WithReadinessProbe(coreapply.Probe().WithHTTPGet(coreapply.HTTPGetAction().
			WithPath(k.svc.Checks.Health.Path).WithPort(intstr.FromString("http"))).WithPeriodSeconds(2))
	if rr := k.resources(); rr != nil {
		container.WithResources(rr)
	}
	if len(k.svc.Run.Command) > 0 {
		var args []string
		for _, a := range k.svc.Run.Command {
			args = append(args, strings.ReplaceAll(a, "{{version}}", version))
		}
		container.WithCommand(args...)
	}
	dep := appsapply.Deployment(name, kc.Namespace).WithLabels(labels).
		WithAnnotations(map[string]string{KubeAnnotArtifact: artifact}).
		WithSpec(appsapply.DeploymentSpec().
			WithReplicas(int32(kc.Replicas)).
			WithProgressDeadlineSeconds(int32(kc.ProgressDeadline.D().Seconds())).
			WithSelector(metaapply.LabelSelector().WithMatchLabels(k.selector(slot))).
			WithTemplate(coreapply.PodTemplateSpec().WithLabels(labels).
				WithAnnotations(map[string]string{KubeAnnotArtifact: artifact}).
				WithSpec(coreapply.PodSpec().WithContainers(container))))
	heartbeat(fmt.Sprintf("applying deployment %s/%s (%s)", kc.Namespace, name, artifact))
	applied, err := deps.Apply(ctx, dep, metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
	if err != nil {
		return in, k.explain("apply deployment "+kc.Namespace+"/"+name, err)
	}
	svc := coreapply.Service(name, kc.Namespace).WithLabels(k.selector(slot)).
		WithSpec(coreapply.ServiceSpec().WithSelector(k.selector(slot)).
			WithPorts(coreapply.ServicePort().WithName("http").WithPort(int32(kc.ServicePort)).WithTargetPort(intstr.FromString("http"))))
	if _, err := k.c.Core.CoreV1().Services(kc.Namespace).Apply(ctx, svc, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
		return in, k.explain("apply service "+kc.Namespace+"/"+name, err)
	}
	in.Running = true
	return in, k.waitRollout(ctx, name, applied.Generation, heartbeat)
}

func ready(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == want &&
		d.Status.AvailableReplicas == want && d.Status.Replicas == want
}

// waitRollout waits for the Deployment's controller to report the
// generation rolled out, failing on its progress deadline.
func (k *Kubernetes) waitRollout(ctx context.Context, name string, gen int64, heartbeat func(string)) error {
	kc := k.svc.Kubernetes
	// the controller reports the deadline; ours is a backstop if it never reports
	deadline := time.Now().Add(kc.ProgressDeadline.D() + 30*time.Second)
	for i := 0; ; i++ {
		d, err := k.c.Core.AppsV1().Deployments(kc.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return k.explain("read deployment "+kc.Namespace+"/"+name, err)
		}
		if d.Generation >= gen && ready(d) {
			return nil
		}
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
				return &BadInputError{fmt.Errorf("kubernetes: deployment %s/%s missed its progress deadline (%s, kubernetes.progressDeadline): %s",
					kc.Namespace, name, kc.ProgressDeadline, c.Message)}
			}
		}
		if time.Now().After(deadline) {
			return &BadInputError{fmt.Errorf("kubernetes: deployment %s/%s not available after its progress deadline (%s, kubernetes.progressDeadline): %d of %d replicas updated, %d available",
				kc.Namespace, name, kc.ProgressDeadline, d.Status.UpdatedReplicas, kc.Replicas, d.Status.AvailableReplicas)}
		}
		if i%4 == 0 {
			heartbeat(fmt.Sprintf("deployment %s: %d/%d updated, %d available", name, d.Status.UpdatedReplicas, kc.Replicas, d.Status.AvailableReplicas))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (k *Kubernetes) env(slot rollout.Slot, version string) []*coreapply.EnvVarApplyConfiguration {
	kc := k.svc.Kubernetes
	env := []*coreapply.EnvVarApplyConfiguration{
		coreapply.EnvVar().WithName("PORT").WithValue(fmt.Sprint(kc.ContainerPort)),
		coreapply.EnvVar().WithName("HOST").WithValue("0.0.0.0"),
		coreapply.EnvVar().WithName("VERSION").WithValue(version),
		coreapply.EnvVar().WithName("SWITCHYARD_SLOT").WithValue(string(slot)),
		coreapply.EnvVar().WithName("SWITCHYARD_SERVICE").WithValue(k.svc.Name),
		coreapply.EnvVar().WithName("SWITCHYARD_ENVIRONMENT").WithValue(k.svc.Environment),
	}
	for _, name := range slices.Sorted(maps.Keys(k.svc.Run.Env)) {
		env = append(env, coreapply.EnvVar().WithName(name).WithValue(strings.ReplaceAll(k.svc.Run.Env[name], "{{version}}", version)))
	}
	for _, name := range slices.Sorted(maps.Keys(kc.SecretEnv)) {
		secret, key, _ := strings.Cut(kc.SecretEnv[name], "/")
		env = append(env, coreapply.EnvVar().WithName(name).WithValueFrom(coreapply.EnvVarSource().
			WithSecretKeyRef(coreapply.SecretKeySelector().WithName(secret).WithKey(key))))
	}
	return env
}

func (k *Kubernetes) resources() *coreapply.ResourceRequirementsApplyConfiguration {
	rs := k.svc.Kubernetes.Resources
	if len(rs) == 0 {
		return nil
	}
	list := func(m map[string]string) corev1.ResourceList {
		out := corev1.ResourceList{}
		for name, q := range m {
			if v, err := resource.ParseQuantity(q); err == nil {
				out[corev1.ResourceName(name)] = v
			}
		}
		return out
	}
	rr := coreapply.ResourceRequirements()
	if m, ok := rs["requests"]; ok {
		rr.WithRequests(list(m))
	}
	if m, ok := rs["limits"]; ok {
		rr.WithLimits(list(m))
	}
	return rr
}

// Retire scales the slot's Deployment to zero, and deletes it and its
// Service when kubernetes.deleteOnRetire says so.
func (k *Kubernetes) Retire(ctx context.Context, slot rollout.Slot) error {
	kc := k.svc.Kubernetes
	name := SlotName(k.svc, slot)
	deps := k.c.Core.AppsV1().Deployments(kc.Namespace)
	if kc.DeleteOnRetire {
		for _, del := range []func() error{
			func() error { return deps.Delete(ctx, name, metav1.DeleteOptions{}) },
			func() error {
				return k.c.Core.CoreV1().Services(kc.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
			},
		} {
			if err := del(); err != nil && !apierrors.IsNotFound(err) {
				return k.explain("delete "+kc.Namespace+"/"+name, err)
			}
		}
		return nil
	}
	// a merge patch of the one field: it cannot conflict with a concurrent writer of another
	_, err := deps.Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{FieldManager: fieldManager})
	if err != nil && !apierrors.IsNotFound(err) {
		return k.explain("scale deployment "+kc.Namespace+"/"+name+" to 0", err)
	}
	return nil
}

// Describe names the slot's Deployment.
func (k *Kubernetes) Describe(in Instance) string {
	return fmt.Sprintf("deployment %s/%s, %d replica(s)", k.svc.Kubernetes.Namespace, SlotName(k.svc, in.Slot), k.svc.Kubernetes.Replicas)
}
