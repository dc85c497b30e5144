package router

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"

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
	_, err := g.update(ctx, "set weights on", func(r *gwv1.HTTPRoute) {
		r.Spec.Rules[0].BackendRefs = []gwv1.HTTPBackendRef{g.ref(g.Blue, w.Blue), g.ref(g.Green, w.Green)}
	})
	return err
}

// update changes the HTTPRoute (which has at least its first rule when
// change runs), read fresh and written again on a resourceVersion conflict,
// and returns it as the API server stored it.
func (g *GatewayAPI) update(ctx context.Context, what string, change func(*gwv1.HTTPRoute)) (*gwv1.HTTPRoute, error) {
	routes := g.c.Gateway.GatewayV1().HTTPRoutes(g.Namespace)
	var stored *gwv1.HTTPRoute
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		r, err := routes.Get(ctx, g.Route, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(r.Spec.Rules) == 0 {
			r.Spec.Rules = []gwv1.HTTPRouteRule{{}}
		}
		change(r)
		stored, err = routes.Update(ctx, r, metav1.UpdateOptions{FieldManager: "switchyard"})
		return err
	})
	if err != nil {
		return nil, g.explain(what+" httproute "+g.Namespace+"/"+g.Route, err)
	}
	return stored, nil
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

// SetRoutes writes the routes as the HTTPRoute's rules after the weighted
// first one: a rule per header set, per cookie set (a regular expression on
// the Cookie header: the Gateway API has no cookie match) and for the test
// route, each to the target's Service (rules with header matches take
// precedence over the first, which has none); a mirror as the first rule's
// RequestMirror filter, with its percent; a sticky cookie as the first
// rule's sessionPersistence (the gateway pins each client to the backend it
// first got). The zero Routes removes them all.
func (g *GatewayAPI) SetRoutes(ctx context.Context, rt rollout.Routes) error {
	if rt.StickyHeader != "" {
		return &rollout.PermanentError{Err: errors.New("gateway-api: sticky canaries by header are not possible (its Header session persistence is a token the gateway issues, not a client's ID): use sticky.cookie")}
	}
	target := g.Blue
	if rt.Target == rollout.Green {
		target = g.Green
	}
	var extra []gwv1.HTTPRouteRule
	rule := func(hs []gwv1.HTTPHeaderMatch) {
		extra = append(extra, gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Headers: hs}}, BackendRefs: []gwv1.HTTPBackendRef{g.ref(target, 1)}})
	}
	if !rt.Empty() {
		if len(rt.Header) > 0 {
			var hs []gwv1.HTTPHeaderMatch
			for _, k := range slices.Sorted(maps.Keys(rt.Header)) {
				hs = append(hs, gwv1.HTTPHeaderMatch{Name: gwv1.HTTPHeaderName(k), Value: rt.Header[k]})
			}
			rule(hs)
		}
		if len(rt.Cookie) > 0 {
			re := gwv1.HeaderMatchRegularExpression
			var hs []gwv1.HTTPHeaderMatch
			for _, k := range slices.Sorted(maps.Keys(rt.Cookie)) {
				hs = append(hs, gwv1.HTTPHeaderMatch{Type: &re, Name: "Cookie", Value: `(^|;\s*)` + regexp.QuoteMeta(k+"="+rt.Cookie[k]) + `(;|$)`})
			}
			rule(hs)
		}
		if rt.TestHeader != "" {
			rule([]gwv1.HTTPHeaderMatch{{Name: gwv1.HTTPHeaderName(rt.TestHeader), Value: rt.TestValue}})
		}
	}
	var filters []gwv1.HTTPRouteFilter
	if !rt.Empty() && rt.MirrorShare > 0 {
		pct, port := int32(math.Round(100*rt.MirrorShare)), g.Port
		filters = []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestMirror, RequestMirror: &gwv1.HTTPRequestMirrorFilter{
			BackendRef: gwv1.BackendObjectReference{Name: gwv1.ObjectName(target), Port: &port}, Percent: &pct}}}
	}
	var sticky *gwv1.SessionPersistence
	if !rt.Empty() && rt.StickyCookie != "" {
		// a permanent cookie, as the other routers set: a client keeps its
		// version across browser restarts for a day, longer than a rollout
		name, typ, life, day := rt.StickyCookie, gwv1.CookieBasedSessionPersistence, gwv1.PermanentCookieLifetimeType, gwv1.Duration("24h")
		sticky = &gwv1.SessionPersistence{SessionName: &name, Type: &typ, AbsoluteTimeout: &day, CookieConfig: &gwv1.CookieConfig{LifetimeType: &life}}
	}
	stored, err := g.update(ctx, "set routes on", func(r *gwv1.HTTPRoute) {
		r.Spec.Rules[0].Filters = filters
		r.Spec.Rules[0].SessionPersistence = sticky
		r.Spec.Rules = append(r.Spec.Rules[:1], extra...)
	})
	if err == nil && sticky != nil && stored.Spec.Rules[0].SessionPersistence == nil {
		// the standard channel's CRD prunes the field without an error:
		// a rollout would go on with no client kept on its version
		_ = g.SetRoutes(ctx, rollout.Routes{})
		return &rollout.PermanentError{Err: errors.New("gateway-api: the cluster's HTTPRoute CRD dropped rules[0].sessionPersistence (the standard channel has no session persistence): install the Gateway API's experimental channel CRDs for sticky canaries, or drop rollout.sticky")}
	}
	return err
}

// Routes reads the target of the rules after the first, and the mirror.
func (g *GatewayAPI) Routes(ctx context.Context) (rollout.Routes, error) {
	var rt rollout.Routes
	r, err := g.c.Gateway.GatewayV1().HTTPRoutes(g.Namespace).Get(ctx, g.Route, metav1.GetOptions{})
	if err != nil {
		return rt, g.explain("read httproute "+g.Namespace+"/"+g.Route, err)
	}
	slot := func(name gwv1.ObjectName) rollout.Slot {
		if string(name) == g.Green {
			return rollout.Green
		}
		return rollout.Blue
	}
	for i, rule := range r.Spec.Rules {
		if sp := rule.SessionPersistence; i == 0 && sp != nil && sp.SessionName != nil {
			rt.StickyCookie = *sp.SessionName
		}
		for _, f := range rule.Filters {
			if m := f.RequestMirror; i == 0 && m != nil {
				rt.Target = slot(m.BackendRef.Name)
				if m.Percent != nil {
					rt.MirrorShare = float64(*m.Percent) / 100
				}
			}
		}
		if i > 0 && len(rule.BackendRefs) > 0 {
			rt.Target = slot(rule.BackendRefs[0].Name)
			for _, m := range rule.Matches {
				for _, h := range m.Headers {
					if h.Type == nil || *h.Type == gwv1.HeaderMatchExact {
						if rt.Header == nil {
							rt.Header = map[string]string{}
						}
						rt.Header[string(h.Name)] = h.Value
					}
				}
			}
		}
	}
	return rt, nil
}

// Mirrored: the Gateway API's mirror discards the copies' answers in the
// data plane, so there is nothing to compare; the mirror step judges the
// target on its own metrics (the only traffic it serves at 0 %).
func (g *GatewayAPI) Mirrored(context.Context) (rollout.MirrorCounters, error) {
	return rollout.MirrorCounters{}, ErrNoCounters
}

var _ Targeter = (*GatewayAPI)(nil)

// Counters: the Gateway API has no per-backend counters; analysis reads the slots' metrics or probes them.
func (g *GatewayAPI) Counters(context.Context) (map[rollout.Slot]rollout.Counters, error) {
	return nil, ErrNoCounters
}
