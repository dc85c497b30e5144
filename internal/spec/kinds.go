package spec

import (
	"strings"
	"time"
)

// PlatformKind names where a service's slots run.
type PlatformKind string

// The platforms.
const (
	PlatformProcess    PlatformKind = "process"
	PlatformDocker     PlatformKind = "docker"
	PlatformKubernetes PlatformKind = "kubernetes"
	// PlatformECS runs each slot as an Amazon ECS service.
	PlatformECS PlatformKind = "ecs"
)

// RouterKind names how traffic is split between a service's slots.
type RouterKind string

// The routers.
const (
	RouterHAProxy RouterKind = "haproxy"
	RouterCaddy   RouterKind = "caddy"
	// RouterEmbedded is a Caddy run inside the worker.
	RouterEmbedded RouterKind = "embedded"
	// RouterGatewayAPI sets HTTPRoute backend weights.
	RouterGatewayAPI RouterKind = "gateway-api"
	// RouterKubernetesService flips a Service's selector.
	RouterKubernetesService RouterKind = "kubernetes-service"
	// RouterALB sets an Application Load Balancer listener's (or rule's)
	// forward weights between the slots' target groups.
	RouterALB RouterKind = "alb"
)

// platformTraits is what the rest of Switchyard may know of a platform
// without importing it: the workflow asks the spec, never the kind.
type platformTraits struct {
	// builds: the platform makes an artifact (an image) for every version.
	builds bool
	// gates: the platform has built-in checks of that artifact.
	gates bool
}

// Platforms lists every platform kind with its traits, in the order the
// errors list them. A new platform is one line here.
var platforms = []struct {
	kind PlatformKind
	platformTraits
}{
	{PlatformProcess, platformTraits{}},
	{PlatformDocker, platformTraits{builds: true, gates: true}},
	{PlatformKubernetes, platformTraits{builds: true}},
	{PlatformECS, platformTraits{}}, // runs an image built and pushed elsewhere (ECR): ecs.image:<version>
}

// routerTraits is what the rest of Switchyard may know of a router.
type routerTraits struct {
	// splits: the router can hold a split between 0 and 100 (steps, a
	// gradual rollback); one that cannot only flips all traffic at once.
	splits bool
	// kubernetes: the router routes to Kubernetes Services.
	kubernetes bool
	// shift bounds one weight change and its read-back: after a worker dies
	// with one in flight, the change is tried again on another after this.
	shift time.Duration
}

var routers = []struct {
	kind RouterKind
	routerTraits
}{
	{RouterHAProxy, routerTraits{splits: true, shift: 2 * time.Second}}, // a unix socket: milliseconds
	{RouterCaddy, routerTraits{splits: true, shift: 5 * time.Second}},
	{RouterEmbedded, routerTraits{splits: true, shift: 2 * time.Second}}, // in process
	{RouterGatewayAPI, routerTraits{splits: true, kubernetes: true, shift: 15 * time.Second}},
	{RouterKubernetesService, routerTraits{kubernetes: true, shift: 15 * time.Second}},
	{RouterALB, routerTraits{splits: true, shift: 30 * time.Second}}, // an AWS API call and its read-back, with retries
}

func (k PlatformKind) traits() (platformTraits, bool) {
	for _, p := range platforms {
		if p.kind == k {
			return p.platformTraits, true
		}
	}
	return platformTraits{}, false
}

func (k RouterKind) traits() (routerTraits, bool) {
	for _, r := range routers {
		if r.kind == k {
			return r.routerTraits, true
		}
	}
	return routerTraits{}, false
}

// Known says whether the platform exists in this build.
func (k PlatformKind) Known() bool { _, ok := k.traits(); return ok }

// Known says whether the router exists in this build.
func (k RouterKind) Known() bool { _, ok := k.traits(); return ok }

// CanSplit says whether the router can hold traffic between 0 and 100 %:
// the one place this rule lives (validation, gradual rollbacks).
func (k RouterKind) CanSplit() bool { t, _ := k.traits(); return t.splits }

// ShiftTimeout bounds one weight change with its read-back (15s for a router not known).
func (k RouterKind) ShiftTimeout() time.Duration {
	if t, _ := k.traits(); t.shift > 0 {
		return t.shift
	}
	return 15 * time.Second
}

// Kubernetes says whether the router routes to Kubernetes Services.
func (k RouterKind) Kubernetes() bool { t, _ := k.traits(); return t.kubernetes }

// platformList is "process, docker or kubernetes", for errors.
func platformList() string {
	var names []string
	for _, p := range platforms {
		names = append(names, string(p.kind))
	}
	return orList(names)
}

// routerList is "haproxy, caddy, ... or kubernetes-service", for errors.
func routerList() string {
	var names []string
	for _, r := range routers {
		names = append(names, string(r.kind))
	}
	return orList(names)
}

func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// NeedsBuild says whether a rollout builds the version before provisioning:
// a build command is given, or the platform makes an artifact.
func (s *Service) NeedsBuild() bool {
	t, _ := s.Platform.traits()
	return len(s.Build.Command) > 0 || t.builds
}

// HasGates says whether a rollout runs gates after the build: the spec
// names some, or the platform checks its artifact itself.
func (s *Service) HasGates() bool {
	t, _ := s.Platform.traits()
	return len(s.Gates) > 0 || t.gates
}
