package router

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corefake "k8s.io/client-go/kubernetes/fake"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/switchyard/switchyard/internal/kube"
	"github.com/switchyard/switchyard/internal/rollout"
)

// These use client-go's fake clientsets (an in-memory object tracker, no
// API server): fast checks of the objects the routers write and read. The
// end-to-end tests drive the same routers against a real kube-apiserver.

func fakeClients() *kube.Clients {
	return &kube.Clients{Core: corefake.NewSimpleClientset(), Gateway: gwfake.NewSimpleClientset(), Host: "fake"}
}

func TestGatewayAPIOnFakeClientsetRouteCarriesTheWeightsOnItsTwoBackendRefs(t *testing.T) {
	c := fakeClients()
	g := &GatewayAPI{c: c, Namespace: "shop", Route: "api", Gateway: "public", GatewayNamespace: "infra",
		Blue: "api-blue", Green: "api-green", Port: 80}
	ctx := context.Background()
	if err := g.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if w, err := g.Weights(ctx); err != nil || w != (rollout.Weights{}) {
		t.Fatalf("a new route sends nothing anywhere: %s %v", w, err)
	}
	for _, w := range []rollout.Weights{{Blue: 100}, {Blue: 75, Green: 25}, {Green: 100}} {
		if err := g.SetWeights(ctx, w); err != nil {
			t.Fatalf("set %s: %v", w, err)
		}
	}
	r, err := c.Gateway.GatewayV1().HTTPRoutes("shop").Get(ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := r.Spec.ParentRefs[0]; string(p.Name) != "public" || p.Namespace == nil || string(*p.Namespace) != "infra" {
		t.Fatalf("parent: %+v", p)
	}
	refs := r.Spec.Rules[0].BackendRefs
	if len(refs) != 2 || string(refs[0].Name) != "api-blue" || *refs[0].Weight != 0 || string(refs[1].Name) != "api-green" || *refs[1].Weight != 100 || *refs[1].Port != 80 {
		t.Fatalf("backendRefs: %+v", refs)
	}
	// a route edited by hand to send elsewhere is refused, not overwritten silently
	r.Spec.Rules[0].BackendRefs = r.Spec.Rules[0].BackendRefs[:1]
	if _, err := c.Gateway.GatewayV1().HTTPRoutes("shop").Update(ctx, r, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Weights(ctx); err == nil || !strings.Contains(err.Error(), "does not send to both api-blue and api-green") {
		t.Fatalf("got %v", err)
	}
}

func TestKubernetesServiceOnFakeClientsetFlipsItsSelectorAndRefusesASplit(t *testing.T) {
	c := fakeClients()
	k := &KubeService{c: c, Namespace: "shop", Name: "api", Env: "production", Port: 80, TargetPort: 8080}
	ctx := context.Background()
	if err := k.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if w, err := k.Weights(ctx); err != nil || w != (rollout.Weights{}) {
		t.Fatalf("a new Service selects no slot: %s %v", w, err)
	}
	if err := k.SetWeights(ctx, rollout.Weights{Green: 100}); err != nil {
		t.Fatal(err)
	}
	s, err := c.Core.CoreV1().Services("shop").Get(ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Spec.Selector["switchyard.io/slot"] != "green" || s.Spec.Selector["switchyard.io/environment"] != "production" {
		t.Fatalf("selector: %v", s.Spec.Selector)
	}
	if err := k.SetWeights(ctx, rollout.Weights{Blue: 50, Green: 50}); err == nil || !strings.Contains(err.Error(), "cannot split traffic") {
		t.Fatalf("a split: %v", err)
	}
	s.Spec.Selector = map[string]string{"app": "other"}
	if _, err := c.Core.CoreV1().Services("shop").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Weights(ctx); err == nil || !strings.Contains(err.Error(), "not a slot") {
		t.Fatalf("a selector changed by hand: %v", err)
	}
}
