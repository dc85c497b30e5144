package router

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Header, cookie and test routes on HAProxy without a reload: the backend
// carries rules (HAProxyRoutes prints them from the spec) that send a
// matching request to the server named by the key "target" of a map file,
// and the runtime API changes that key (set map / del map). An absent key
// routes by weight only. A matching request goes to the slot's first
// server (use-server names one server).

// HAProxyRoutes is what the backend needs for the spec's routes (match,
// test route, sticky): the rules reading the map file, to paste into the
// backend before its servers (`switchyard haproxy-routes`).
func HAProxyRoutes(s *spec.Service) string {
	m := s.Router.HAProxy.Map
	var conds []string
	acl := 0
	var b strings.Builder
	fmt.Fprintf(&b, "    # Switchyard's routes for %s (rollout.match, checks.testRoute): the key\n", s.Name)
	fmt.Fprintf(&b, "    # \"target\" of %s names the new version's slot while they are in force\n", m)
	fmt.Fprintf(&b, "    http-request set-var(txn.sy_target) str(target),map(%s,none)\n", m)
	each := func(fetch string, kv map[string]string) {
		var names []string
		for _, k := range slices.Sorted(maps.Keys(kv)) {
			acl++
			name := fmt.Sprintf("sy_m%d", acl)
			fmt.Fprintf(&b, "    acl %s %s(%s) -m str %s\n", name, fetch, k, kv[k])
			names = append(names, name)
		}
		if len(names) > 0 {
			conds = append(conds, strings.Join(names, " "))
		}
	}
	if mt := s.Rollout.Match; mt != nil {
		each("req.hdr", mt.Header)
		each("req.cook", mt.Cookie)
	}
	if tr := s.Checks.TestRoute; tr != nil {
		each("req.hdr", map[string]string{tr.Header: tr.Value})
	}
	for _, slot := range []string{"blue", "green"} {
		for _, c := range conds {
			fmt.Fprintf(&b, "    use-server %s if %s { var(txn.sy_target) -m str %s }\n", slot, c, slot)
		}
	}
	if st := s.Rollout.Sticky; st != nil {
		// a client's bucket (0-99) is on the target while below its weight
		// (the map's key "weight"): from its cookie, else drawn and set on
		// the answer; or hashed from the header that names it
		fmt.Fprintf(&b, "    http-request set-var(txn.sy_w) str(weight),map(%s,0)\n", m)
		if st.Cookie != "" {
			fmt.Fprintf(&b, "    acl sy_has req.cook(%s) -m reg ^[0-9]{1,2}$\n", st.Cookie)
			fmt.Fprintf(&b, "    http-request set-var(txn.sy_b) req.cook(%s) if sy_has\n", st.Cookie)
			b.WriteString("    http-request set-var(txn.sy_b) rand(100) if !sy_has\n")
			b.WriteString("    http-request set-var(txn.sy_set) int(1) if !sy_has { var(txn.sy_target) -m found }\n")
			fmt.Fprintf(&b, "    http-response add-header Set-Cookie \"%s=%%[var(txn.sy_b)]; Path=/; HttpOnly; SameSite=Lax\" if { var(txn.sy_set) -m found }\n", st.Cookie)
		} else {
			fmt.Fprintf(&b, "    http-request set-var(txn.sy_b) req.hdr(%s),djb2,mod(100)\n", st.Header)
		}
		b.WriteString("    http-request set-var(txn.sy_d) var(txn.sy_b),sub(txn.sy_w)\n")
		b.WriteString("    acl sy_new var(txn.sy_d) -m int lt 0\n")
		b.WriteString("    acl sy_b var(txn.sy_b) -m found\n")
		for _, slot := range []string{"blue", "green"} {
			other := map[string]string{"blue": "green", "green": "blue"}[slot]
			fmt.Fprintf(&b, "    use-server %s if sy_b sy_new { var(txn.sy_target) -m str %s }\n", slot, slot)
			fmt.Fprintf(&b, "    use-server %s if sy_b !sy_new { var(txn.sy_target) -m str %s }\n", other, slot)
		}
	}
	return b.String()
}

// SetRoutes puts the target in the map (or takes it out: by weight only).
func (h *HAProxy) SetRoutes(ctx context.Context, r rollout.Routes) error {
	if h.Map == "" {
		return &rollout.PermanentError{Err: errors.New("haproxy: routes need router.haproxy.map (the map file the backend's rules read)")}
	}
	if r.MirrorShare > 0 {
		return &rollout.PermanentError{Err: errors.New("haproxy: mirroring needs router kind embedded")}
	}
	// the weight first: a sticky client is compared with the new one as
	// soon as the target is in force
	cmds := []string{fmt.Sprintf("del map %s weight", h.Map), fmt.Sprintf("del map %s target", h.Map)}
	if !r.Empty() {
		// use-server skips a server HAProxy holds down, and a slot just
		// started is down until HAProxy's own check passes (as when a
		// weight rises from 0): marked up, the next check still judges it
		for _, name := range h.servers(r.Target) {
			cmds = append(cmds, fmt.Sprintf("set server %s/%s health up", h.Backend, name))
		}
		cmds = append(cmds, fmt.Sprintf("add map %s weight %d", h.Map, r.Weight), fmt.Sprintf("add map %s target %s", h.Map, r.Target))
	}
	out, err := h.Command(ctx, strings.Join(cmds, "; "))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		switch line = strings.TrimSpace(line); {
		case line == "", strings.HasPrefix(line, "Key not found"):
		case strings.Contains(line, "Unknown map identifier"):
			return &rollout.PermanentError{Err: fmt.Errorf("haproxy: no map %s is loaded: add the rules `switchyard haproxy-routes` prints to backend %s, and create the file (empty)", h.Map, h.Backend)}
		default:
			return fmt.Errorf("haproxy: %s: %s", strings.Join(cmds, "; "), line)
		}
	}
	return nil
}

// Routes reads the target in force from the map (the match is the config's).
func (h *HAProxy) Routes(ctx context.Context) (rollout.Routes, error) {
	var r rollout.Routes
	if h.Map == "" {
		return r, nil
	}
	out, err := h.Command(ctx, "show map "+h.Map)
	if err != nil {
		return r, err
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[1] == "target" {
			r.Target = rollout.Slot(f[2])
		}
	}
	return r, nil
}

// Mirrored: HAProxy has no built-in request mirroring.
func (h *HAProxy) Mirrored(context.Context) (rollout.MirrorCounters, error) {
	return rollout.MirrorCounters{}, &rollout.PermanentError{Err: errors.New("haproxy cannot mirror requests (only an external SPOE agent can): use router kind embedded")}
}

var _ Targeter = (*HAProxy)(nil)
