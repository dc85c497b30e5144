// Package router splits a service's traffic between its blue and green slots.
// One small interface, one file per router, picked by the spec's router kind.
package router

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/internal/kube"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Router is what a rollout needs from a load balancer.
type Router interface {
	// Ensure points the two slots' backends at their addresses, creating the
	// route where the router allows it. Idempotent; it leaves weights as they are.
	Ensure(ctx context.Context) error
	// SetWeights applies absolute weights. It does not read them back: the
	// caller verifies once, with Verify, whatever the router.
	SetWeights(ctx context.Context, w rollout.Weights) error
	// Weights reads the weights the router applies now: the state of record.
	Weights(ctx context.Context) (rollout.Weights, error)
	// Counters reads cumulative per-slot request counters, or returns
	// ErrNoCounters when the router keeps none.
	Counters(ctx context.Context) (map[rollout.Slot]rollout.Counters, error)
}

// Targeter is a router that routes by request as well as by weight:
// matching requests, a test route and sticky clients (rollout.Routes).
// The embedded router does all of it; HAProxy header, cookie and test
// routes (haproxyroutes.go). A spec asking for more than its router does
// is refused when it is validated.
type Targeter interface {
	// SetRoutes puts routes in force (the zero Routes: by weight only).
	SetRoutes(ctx context.Context, r rollout.Routes) error
	// Routes reads the routes in force.
	Routes(ctx context.Context) (rollout.Routes, error)
	// Mirrored reads the mirror's counts (rollout.Routes.MirrorShare).
	Mirrored(ctx context.Context) (rollout.MirrorCounters, error)
}

// ErrNoCounters says the router keeps no per-slot counters; analysis then
// reads the slots' own metrics or probes them.
var ErrNoCounters = errors.New("router keeps no per-slot counters")

// MismatchError is a router reporting other weights than were just set:
// a change that did not land (or was overwritten). Setting again may fix it.
type MismatchError struct {
	Kind     spec.RouterKind
	Set, Got rollout.Weights
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s router reports %s after setting %s", e.Kind, e.Got, e.Set)
}

// Verify reads the weights back after a SetWeights and fails unless the
// router reports exactly w (argo-rollouts' VerifyWeight, for every router).
func Verify(ctx context.Context, r Router, kind spec.RouterKind, w rollout.Weights) error {
	got, err := r.Weights(ctx)
	if err != nil {
		return err
	}
	if got != w {
		return &MismatchError{Kind: kind, Set: w, Got: got}
	}
	return nil
}

// New returns the router the spec names. emb is the worker's embedded
// Caddy, used by router kind embedded (nil where the process runs none).
func New(s *spec.Service, emb *Embedded) (Router, error) {
	blue, green := s.SlotAddrs("blue"), s.SlotAddrs("green")
	switch s.Router.Kind {
	case spec.RouterHAProxy:
		return &HAProxy{Socket: s.Router.HAProxy.Socket, Backend: s.Router.HAProxy.Backend, Map: s.Router.HAProxy.Map, Blue: blue, Green: green}, nil
	case spec.RouterCaddy, spec.RouterEmbedded:
		c := &Caddy{Admin: s.Router.Caddy.Admin, Listen: s.Router.Caddy.Listen,
			ID: "switchyard-" + s.Name + "-" + s.Environment, Blue: blue, Green: green}
		if s.Router.Kind == spec.RouterEmbedded {
			c.Held, c.embedded = emb, true
		}
		c.modules = c.embedded || s.Router.Caddy.SwitchyardModules
		return c, nil
	case spec.RouterALB:
		return NewALB(context.Background(), s.Router.ALB)
	case spec.RouterGatewayAPI, spec.RouterKubernetesService:
		c, err := kube.For(s)
		if err != nil {
			return nil, err
		}
		ns := s.Kubernetes.Namespace
		if s.Router.Kind == spec.RouterKubernetesService {
			return &KubeService{c: c, Namespace: ns, Name: s.Name, Env: s.Environment,
				Port: int32(s.Kubernetes.ServicePort), TargetPort: int32(s.Kubernetes.ContainerPort)}, nil
		}
		g := s.Router.GatewayAPI
		return &GatewayAPI{c: c, Namespace: ns, Route: g.Route, Gateway: g.Gateway, GatewayNamespace: g.GatewayNamespace,
			Blue: s.Name + "-blue", Green: s.Name + "-green", Port: int32(s.Kubernetes.ServicePort)}, nil
	}
	return nil, fmt.Errorf("router: unknown kind %q", s.Router.Kind)
}
