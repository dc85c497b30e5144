package router

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"

	"github.com/switchyard/switchyard/internal/kube"
	"github.com/switchyard/switchyard/internal/rollout"
)

// KubeService is plain blue-green on any cluster: the service's stable
// Service selects one slot's Pods, and a switch flips its selector. There is
// no split: weights are 100/0, 0/100, or 0/0 before the first deploy.
type KubeService struct {
	c                *kube.Clients
	Namespace, Name  string
	Env              string
	Port, TargetPort int32
}

const noSlot = "none" // the selector before any slot is live: it selects nothing

func (k *KubeService) explain(what string, err error) error {
	return k.c.Error(what, err)
}

func (k *KubeService) selector(slot string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": k.Name, "switchyard.io/environment": k.Env, "switchyard.io/slot": slot}
}

// Ensure creates the stable Service, selecting no slot, unless it exists.
func (k *KubeService) Ensure(ctx context.Context) error {
	svcs := k.c.Core.CoreV1().Services(k.Namespace)
	if _, err := svcs.Get(ctx, k.Name, metav1.GetOptions{}); err == nil {
		return nil
	} else if !apierrors.IsNotFound(err) || isKindMissing(err) {
		return k.explain("read service "+k.Namespace+"/"+k.Name, err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: k.Name, Namespace: k.Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "switchyard"}},
		Spec: corev1.ServiceSpec{Selector: k.selector(noSlot),
			Ports: []corev1.ServicePort{{Name: "http", Port: k.Port, TargetPort: intstr.FromInt32(k.TargetPort)}}},
	}
	if _, err := svcs.Create(ctx, svc, metav1.CreateOptions{FieldManager: "switchyard"}); err != nil && !apierrors.IsAlreadyExists(err) {
		return k.explain("create service "+k.Namespace+"/"+k.Name, err)
	}
	return nil
}

// SetWeights points the selector at the slot with 100 %.
func (k *KubeService) SetWeights(ctx context.Context, w rollout.Weights) error {
	slot := noSlot
	switch w {
	case rollout.Weights{Blue: 100}:
		slot = "blue"
	case rollout.Weights{Green: 100}:
		slot = "green"
	case rollout.Weights{}:
	default:
		return &rollout.PermanentError{Err: fmt.Errorf("kubernetes: the kubernetes-service router flips the whole Service: it cannot split traffic %s (use router kind gateway-api for steps or a gradual rollback)", w)}
	}
	svcs := k.c.Core.CoreV1().Services(k.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := svcs.Get(ctx, k.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Selector = k.selector(slot)
		_, err = svcs.Update(ctx, s, metav1.UpdateOptions{FieldManager: "switchyard"})
		return err
	})
	if err != nil {
		return k.explain("flip service "+k.Namespace+"/"+k.Name, err)
	}
	return nil
}

// Weights reads which slot the selector names.
func (k *KubeService) Weights(ctx context.Context) (rollout.Weights, error) {
	s, err := k.c.Core.CoreV1().Services(k.Namespace).Get(ctx, k.Name, metav1.GetOptions{})
	if err != nil {
		return rollout.Weights{}, k.explain("read service "+k.Namespace+"/"+k.Name, err)
	}
	switch s.Spec.Selector["switchyard.io/slot"] {
	case "blue":
		return rollout.Weights{Blue: 100}, nil
	case "green":
		return rollout.Weights{Green: 100}, nil
	case noSlot:
		return rollout.Weights{}, nil
	}
	return rollout.Weights{}, fmt.Errorf("kubernetes: service %s/%s selects %v, not a slot (was it changed by hand?)", k.Namespace, k.Name, s.Spec.Selector)
}

// Counters: a Service keeps no request counters.
func (k *KubeService) Counters(context.Context) (map[rollout.Slot]rollout.Counters, error) {
	return nil, ErrNoCounters
}
