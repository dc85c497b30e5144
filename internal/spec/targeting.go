package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Who gets the new version besides the weights (targeting): requests that
// match a header or cookie (a dark launch to staff before any weight), a
// test route that reaches the idle slot through the router, and sticky
// clients that keep their version as the weight rises.

// Match sends requests carrying every header given, or every cookie given
// (exact values), to the new version whatever the weight.
type Match struct {
	Header map[string]string `yaml:"header" json:"header,omitempty"`
	Cookie map[string]string `yaml:"cookie" json:"cookie,omitempty"`
}

// Sticky keeps each client on the version it got: by a cookie the router
// sets (Cookie), or by a header that names the client, such as a user ID
// (Header). One of the two.
type Sticky struct {
	Cookie string `yaml:"cookie" json:"cookie,omitempty"`
	Header string `yaml:"header" json:"header,omitempty"`
}

// TestRoute sends the smoke and performance checks through the router, with
// a header that reaches the idle slot before any traffic does: they test
// the path users will take, not only the slot's port.
type TestRoute struct {
	Header string `yaml:"header" json:"header"`
	// Value of the header (default "1").
	Value string `yaml:"value" json:"value"`
	// URL is the router's address for the checks (default, for router kind
	// embedded: its listen address).
	URL string `yaml:"url" json:"url,omitempty"`
}

// Steps are the traffic steps in percent; "header" (written as a word, 0
// here) is a step where only the requests rollout.match routes reach the
// new version, with its own bake and analysis.
type Steps []int

// HeaderStep and MirrorStep are the values of a "header" and a "mirror" step.
const (
	HeaderStep = 0
	MirrorStep = -1
)

// Mirror copies a share of the live requests to the new version during a
// "mirror" step: its answers are discarded and compared with the live
// slot's, and the comparison is judged like any analysis.
type Mirror struct {
	// Share of requests copied, 0-1 (default 0.1).
	Share float64 `yaml:"share" json:"share"`
	// CompareBody compares the body (a hash) of GETs, not only the status class.
	CompareBody bool `yaml:"compareBody" json:"compareBody,omitempty"`
	// MaxMismatchRate: the share of compared answers that may differ (default 0.01).
	MaxMismatchRate *float64 `yaml:"maxMismatchRate" json:"maxMismatchRate,omitempty"`
	// MaxErrorRate: the share of copies that may fail or answer 5xx
	// (default rollout.analysis.maxErrorRate).
	MaxErrorRate *float64 `yaml:"maxErrorRate" json:"maxErrorRate,omitempty"`
	// MaxLatency: the copies' mean response time (optional).
	MaxLatency Duration `yaml:"maxLatency" json:"maxLatency,omitempty"`
}

// UnmarshalYAML reads numbers, and the word header.
func (s *Steps) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		var ints []int
		if err := n.Decode(&ints); err != nil {
			return err
		}
		*s = ints
		return nil
	}
	out := make(Steps, 0, len(n.Content))
	var bad []string
	for _, c := range n.Content {
		if c.Kind == yaml.ScalarNode && (c.Value == "header" || c.Value == "mirror") {
			out = append(out, map[string]int{"header": HeaderStep, "mirror": MirrorStep}[c.Value])
			continue
		}
		var v int
		if err := c.Decode(&v); err != nil {
			// yaml's own errors, so they read (and carry on) like any field's
			if te, ok := err.(*yaml.TypeError); ok {
				bad = append(bad, te.Errors...)
				continue
			}
			return err
		}
		out = append(out, v)
	}
	*s = out
	if len(bad) > 0 {
		return &yaml.TypeError{Errors: bad}
	}
	return nil
}

// Label names a step as it is written: "mirror", "header" or "25%".
func (s Steps) Label(i int) string {
	switch s[i] {
	case HeaderStep:
		return "header"
	case MirrorStep:
		return "mirror"
	}
	return fmt.Sprintf("%d%%", s[i])
}

// Targets says whether the spec routes by request as well as by weight.
func (s *Service) Targets() bool {
	return s.Rollout.Match != nil || s.Rollout.Sticky != nil || s.Checks.TestRoute != nil || s.Rollout.Mirror != nil
}

func (s *Service) defaultTargeting() {
	if m := s.Rollout.Mirror; m != nil {
		if m.Share == 0 {
			m.Share = 0.1
		}
		if m.MaxMismatchRate == nil {
			v := 0.01
			m.MaxMismatchRate = &v
		}
		if m.MaxErrorRate == nil {
			v := s.Rollout.Analysis.MaxErrorRate
			m.MaxErrorRate = &v
		}
	}
	if tr := s.Checks.TestRoute; tr != nil {
		if tr.Value == "" {
			tr.Value = "1"
		}
		if tr.URL == "" && s.Router.Kind == RouterEmbedded && s.Router.Caddy.Listen != "" {
			tr.URL = "http://" + s.Router.Caddy.Listen
		}
	}
}

func (s *Service) validateTargeting(add adder) {
	r := &s.Rollout
	if !s.Targets() {
		return
	}
	// what each router kind can do: the embedded router all of it
	var cannot []string
	switch s.Router.Kind {
	case RouterEmbedded:
	case RouterHAProxy:
		if s.Router.HAProxy.Map == "" {
			add("router.haproxy.map", "required for rollout.match, rollout.sticky and checks.testRoute on HAProxy: the map file the backend's route rules read (switchyard haproxy-routes prints them)")
		}
		if r.Mirror != nil {
			cannot = append(cannot, "rollout.mirror", "cannot mirror traffic (HAProxy has no built-in request mirroring, only an external SPOE agent)")
		}
	case RouterCaddy:
		// Caddy's stock policies are not weight-aware, and mirroring and
		// comparing needs a handler of Switchyard's
		if !s.Router.Caddy.SwitchyardModules {
			if r.Sticky != nil {
				add("rollout.sticky", "router kind caddy keeps sticky canaries only with Switchyard's selection policy: build Caddy with it (go build -o caddy ./cmd/caddy) and set router.caddy.switchyardModules: true, or use router kind embedded")
			}
			if r.Mirror != nil {
				add("rollout.mirror", "router kind caddy mirrors and compares traffic only with Switchyard's mirror handler: build Caddy with it (go build -o caddy ./cmd/caddy) and set router.caddy.switchyardModules: true, or use router kind embedded")
			}
		}
	case RouterGatewayAPI:
		// sticky by cookie is the HTTPRoute's sessionPersistence (the
		// experimental channel's CRD; a standard one is found out at the
		// first Shift, before any weight moves)
		if r.Sticky != nil && r.Sticky.Header != "" {
			add("rollout.sticky.header", "router kind gateway-api keeps sticky canaries by cookie only (its Header session persistence is a token the gateway issues, not a client's ID): use sticky.cookie")
		}
	default:
		for _, f := range []struct {
			field string
			on    bool
		}{{"rollout.match", r.Match != nil}, {"rollout.sticky", r.Sticky != nil}, {"rollout.mirror", r.Mirror != nil}, {"checks.testRoute", s.Checks.TestRoute != nil}} {
			if f.on {
				cannot = append(cannot, f.field, "cannot route by request")
			}
		}
	}
	for i := 0; i < len(cannot); i += 2 {
		add(cannot[i], "router kind %s %s: use router kind embedded (Switchyard's own selection policy and mirror handler)", s.Router.Kind, cannot[i+1])
	}
	if m := r.Mirror; m != nil {
		if m.Share <= 0 || m.Share > 1 {
			add("rollout.mirror.share", "must be a fraction above 0 and at most 1 (got %v)", m.Share)
		}
		for _, f := range []struct {
			field string
			v     *float64
		}{{"rollout.mirror.maxMismatchRate", m.MaxMismatchRate}, {"rollout.mirror.maxErrorRate", m.MaxErrorRate}} {
			if f.v != nil {
				checkRate(add, f.field, *f.v)
			}
		}
		if !slices.Contains(r.Steps, MirrorStep) {
			add("rollout.mirror", "no step mirrors: put mirror first in rollout.steps, like [mirror, 10, 50, 100]")
		}
	}
	if m := r.Match; m != nil {
		if len(m.Header) == 0 && len(m.Cookie) == 0 {
			add("rollout.match", "give a header or a cookie: requests carrying them reach the new version")
		}
		for _, k := range slices.Sorted(maps.Keys(m.Header)) {
			if !tokenRe(k) {
				add("rollout.match.header."+k, "%q is not a header name", k)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(m.Cookie)) {
			if !tokenRe(k) {
				add("rollout.match.cookie."+k, "%q is not a cookie name", k)
			}
		}
	}
	if st := r.Sticky; st != nil {
		switch {
		case (st.Cookie == "") == (st.Header == ""):
			add("rollout.sticky", "give one of cookie (the router sets it) or header (a client ID, such as X-User-ID)")
		case st.Cookie != "" && !tokenRe(st.Cookie):
			add("rollout.sticky.cookie", "%q is not a cookie name", st.Cookie)
		case st.Header != "" && !tokenRe(st.Header):
			add("rollout.sticky.header", "%q is not a header name", st.Header)
		}
	}
	if tr := s.Checks.TestRoute; tr != nil {
		if !tokenRe(tr.Header) {
			add("checks.testRoute.header", "%q is not a header name (like X-Switchyard-Test)", tr.Header)
		}
		if tr.URL == "" {
			add("checks.testRoute.url", "required: the router's address the checks go to, like http://127.0.0.1:8080")
		}
	}
}

// tokenRe: an HTTP token (header and cookie names).
func tokenRe(s string) bool {
	if s == "" {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r >= 127 || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r)
	})
}
