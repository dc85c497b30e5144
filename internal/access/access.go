// Package access is who may do what to which service in which environment:
// one policy file of roles, matched against a verified identity (an OIDC
// user's e-mail and groups, a CI token's subject).
package access

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Actions a role can grant.
const (
	Deploy   = "deploy"
	Pause    = "pause"   // and resume
	Promote  = "promote" // skip a bake, go to 100 %
	Abort    = "abort"
	Rollback = "rollback" // and escalate
	Approve  = "approve"  // and reject
	Freeze   = "freeze"   // and unfreeze
)

var known = []string{Deploy, Pause, Promote, Abort, Rollback, Approve, Freeze}

// Policy is the roles file.
type Policy struct {
	Roles []Role `yaml:"roles"`
	// Delegates act for people they have verified themselves (the
	// dashboard, which signs people in with OIDC): their requests may say
	// they are by someone else. Everyone else's must say they are by the
	// token's own subject, or by nobody.
	Delegates []string `yaml:"delegates"`
	Path      string   `yaml:"-"`
}

// Delegate says whether subject may act for others.
func (p *Policy) Delegate(subject string) bool {
	return p != nil && slices.ContainsFunc(p.Delegates, func(d string) bool { return strings.EqualFold(d, subject) })
}

// Role grants actions on services (or releases) in environments to members.
type Role struct {
	Name string `yaml:"name"`
	// Members: e-mails or subjects ("ci@example.com"), or "group:NAME"
	// for everyone an identity provider puts in that group.
	Members []string `yaml:"members"`
	// Actions, Services (or release names) and Environments: "*" is any.
	Actions      []string `yaml:"actions"`
	Services     []string `yaml:"services"`
	Environments []string `yaml:"environments"`
}

// Identity is who the identity provider says someone is.
type Identity struct {
	Subject string   // e-mail when it gave one, else the subject
	Groups  []string // the groups claim, if any
}

// Load reads a policy file; unknown fields and actions are errors.
func Load(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("roles: %w", err)
	}
	var p Policy
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("roles %s: %w", path, err)
	}
	for i, r := range p.Roles {
		at := fmt.Sprintf("roles %s: roles[%d] (%s)", path, i, r.Name)
		if len(r.Members) == 0 || len(r.Actions) == 0 || len(r.Services) == 0 || len(r.Environments) == 0 {
			return nil, fmt.Errorf("%s: members, actions, services and environments are required", at)
		}
		for _, a := range r.Actions {
			if a != "*" && !slices.Contains(known, a) {
				return nil, fmt.Errorf("%s: actions: %q is not one of %s", at, a, strings.Join(known, ", "))
			}
		}
	}
	p.Path = path
	return &p, nil
}

// Allows says whether who may do action on target (a service or a
// release) in env ("" for an action on a whole release), and if not, why.
// A nil policy allows everything.
func (p *Policy) Allows(who Identity, action, target, env string) error {
	if p == nil {
		return nil
	}
	for _, r := range p.Roles {
		if r.has(who) && match(r.Actions, action) && match(r.Services, target) && (env == "" || match(r.Environments, env)) {
			return nil
		}
	}
	where := target
	if env != "" {
		where += " in " + env
	}
	return fmt.Errorf("%s may not %s %s: no role in %s grants it", who.Subject, action, where, p.Path)
}

func (r Role) has(who Identity) bool {
	for _, m := range r.Members {
		if g, ok := strings.CutPrefix(m, "group:"); ok {
			if slices.Contains(who.Groups, g) {
				return true
			}
		} else if who.Subject != "" && strings.EqualFold(m, who.Subject) {
			return true
		}
	}
	return false
}

func match(list []string, v string) bool {
	return slices.Contains(list, "*") || slices.Contains(list, v)
}
