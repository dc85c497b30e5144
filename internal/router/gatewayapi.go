package router

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/switchyard/switchyard/internal/kube"
	"github.com/switchyard/switchyard/internal/rollout"
)

// GatewayAPI splits traffic with an HTTPRoute whose one rule has two
// backendRefs, the slots' Services, carrying the weights: any Gateway API
// implementation (Envoy Gateway, Istio, NGINX Gateway Fabric, ...) applies them.
type GatewayAPI struct {
	c                         *kube.Clients
	Namespace, Route          string
	Gateway, GatewayNamespace string
	Blue, Green               string // the slots' Service names
	Port                      int32
}

func (g *GatewayAPI) explain(what string, err error) error {
	return g.c.Error(what, err)
}

func (g *GatewayAPI) ref(name string, weight int) gwv1.HTTPBackendRef {
	w, port := int32(weight), g.Port
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{Weight: &w,
		BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(name), Port: &port}}}
}

// Ensure creates the HTTPRoute, with both weights 0, unless it exists.
func (g *GatewayAPI) Ensure(ctx context.Context) error {
	routes := g.c.Gateway.GatewayV1().HTTPRoutes(g.Namespace)
	_, err := routes.Get(ctx, g.Route, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) || isKindMissing(err) {
		return g.explain("read httproute "+g.Namespace+"/"+g.Route, err)
	}
	parent := gwv1.ParentReference{Name: gwv1.ObjectName(g.Gateway)}
	if g.GatewayNamespace != "" {
		ns := gwv1.Namespace(g.GatewayNamespace)
		parent.Namespace = &ns
	}
	route := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: g.Route, Namespace: g.Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "switchyard"}},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{parent}},
			Rules:           []gwv1.HTTPRouteRule{{BackendRefs: []gwv1.HTTPBackendRef{g.ref(g.Blue, 0), g.ref(g.Green, 0)}}},
		},
	}
	if _, err := routes.Create(ctx, route, metav1.CreateOptions{FieldManager: "switchyard"}); err != nil && !apierrors.IsAlreadyExists(err) {
		return g.explain("create httproute "+g.Namespace+"/"+g.Route, err)
	}
	return nil
}

// isKindMissing tells a missing CRD from a missing object.
func isKindMissing(err error) bool {
	st, ok := err.(apierrors.APIStatus)
	return ok && st.Status().Details == nil
}

// SetWeights writes both backendRefs' weights (retrying on a
// resourceVersion conflict).
func (g *GatewayAPI) SetWeights(ctx context.Context, w rollout.Weights) error {
	routes := g.c.Gateway.GatewayV1().HTTPRoutes(g.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		r, err := routes.Get(ctx, g.Route, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(r.Spec.Rules) == 0 {
			r.Spec.Rules = []gwv1.HTTPRouteRule{{}}
		}
		r.Spec.Rules[0].BackendRefs = []gwv1.HTTPBackendRef{g.ref(g.Blue, w.Blue), g.ref(g.Green, w.Green)}
		_, err = routes.Update(ctx, r, metav1.UpdateOptions{FieldManager: "switchyard"})
		return err
	})
	if err != nil {
		return g.explain("set weights on httproute "+g.Namespace+"/"+g.Route, err)
	}
	return nil
}

// Weights reads the two backendRefs' weights from the route's first rule.
func (g *GatewayAPI) Weights(ctx context.Context) (rollout.Weights, error) {
	r, err := g.c.Gateway.GatewayV1().HTTPRoutes(g.Namespace).Get(ctx, g.Route, metav1.GetOptions{})
	if err != nil {
		return rollout.Weights{}, g.explain("read httproute "+g.Namespace+"/"+g.Route, err)
	}
	var w rollout.Weights
	found := 0
	if len(r.Spec.Rules) > 0 {
		for _, b := range r.Spec.Rules[0].BackendRefs {
			weight := 1 // the Gateway API's default
			if b.Weight != nil {
				weight = int(*b.Weight)
			}
			switch string(b.Name) {
			case g.Blue:
				w.Blue, found = weight, found+1
			case g.Green:
				w.Green, found = weight, found+1
			}
		}
	}
	if found != 2 {
		return w, fmt.Errorf("kubernetes: httproute %s/%s's first rule does not send to both %s and %s (was it changed by hand?)", g.Namespace, g.Route, g.Blue, g.Green)
	}
	return w, nil
}

// Counters: the Gateway API has no per-backend counters; analysis reads the slots' metrics or probes them.
func (g *GatewayAPI) Counters(context.Context) (map[rollout.Slot]rollout.Counters, error) {
	return nil, ErrNoCounters
}
