package spec

import (
	"fmt"
	"strings"
	"testing"
)

// What each router can do for targeting: the spec is refused naming the
// field and the way out, or accepted.
func TestEachRouterRefusesTheTargetingItCannotDoNamingTheField(t *testing.T) {
	sticky := func(by string) func(*Service) {
		return func(s *Service) {
			s.Rollout.Steps = Steps{10, 100}
			if by == "header" {
				s.Rollout.Sticky = &Sticky{Header: "X-User-ID"}
			} else {
				s.Rollout.Sticky = &Sticky{Cookie: "sw-canary"}
			}
		}
	}
	mirror := func(s *Service) {
		s.Rollout.Steps = Steps{MirrorStep, 100}
		s.Rollout.Mirror = &Mirror{Share: 0.5}
	}
	for _, tc := range []struct {
		kind    RouterKind
		modules bool
		set     func(*Service)
		want    string // "" accepted
	}{
		{RouterEmbedded, false, sticky("cookie"), ""},
		{RouterEmbedded, false, mirror, ""},
		{RouterCaddy, false, sticky("cookie"), "rollout.sticky: router kind caddy keeps sticky canaries only with Switchyard's selection policy: build Caddy with it (go build -o caddy ./cmd/caddy) and set router.caddy.switchyardModules: true"},
		{RouterCaddy, false, mirror, "rollout.mirror: router kind caddy mirrors and compares traffic only with Switchyard's mirror handler"},
		{RouterCaddy, true, sticky("header"), ""},
		{RouterCaddy, true, mirror, ""},
		{RouterEmbedded, true, sticky("cookie"), "router.caddy.switchyardModules: is for router kind caddy"},
		{RouterHAProxy, false, mirror, "rollout.mirror: router kind haproxy cannot mirror traffic (HAProxy has no built-in request mirroring"},
		{RouterHAProxy, false, sticky("cookie"), "router.haproxy.map: required for rollout.match, rollout.sticky"},
		{RouterGatewayAPI, false, sticky("cookie"), ""},
		{RouterGatewayAPI, false, sticky("header"), "rollout.sticky.header: router kind gateway-api keeps sticky canaries by cookie only"},
		{RouterGatewayAPI, false, mirror, ""},
		{RouterKubernetesService, false, sticky("cookie"), "rollout.sticky: router kind kubernetes-service cannot route by request"},
	} {
		s := &Service{Router: Router{Kind: tc.kind, Caddy: Caddy{Listen: "127.0.0.1:8080", Admin: "http://127.0.0.1:2019", SwitchyardModules: tc.modules}}}
		tc.set(s)
		var got []string
		add := func(field, format string, args ...any) { got = append(got, field+": "+fmt.Sprintf(format, args...)) }
		s.validateTargeting(add)
		if tc.kind == RouterCaddy || tc.kind == RouterEmbedded {
			s.validateRouter(add)
		}
		all := strings.Join(got, "\n")
		name := fmt.Sprintf("%s (modules %v) %v", tc.kind, tc.modules, s.Rollout.Steps)
		switch {
		case tc.want == "" && all != "":
			t.Errorf("%s: refused: %s", name, all)
		case tc.want != "" && !strings.Contains(all, tc.want):
			t.Errorf("%s: got %q, want %q", name, all, tc.want)
		}
	}
}
