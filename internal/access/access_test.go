package access

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const roles = `roles:
  - name: developers
    members: [group:dev]
    actions: [deploy, pause, promote, abort, rollback]
    services: ["*"]
    environments: [staging]
  - name: on-call
    members: [oncall@example.com]
    actions: [pause, abort, rollback]
    services: ["*"]
    environments: ["*"]
  - name: release managers
    members: [carol@example.com, group:release-managers]
    actions: ["*"]
    services: [shop, api]
    environments: [production]
`

func TestRolesGrantActionsOnServicesInEnvironmentsToMembers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "roles.yaml")
	if err := os.WriteFile(path, []byte(roles), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	dev := Identity{Subject: "dan@example.com", Groups: []string{"dev"}}
	oncall := Identity{Subject: "OnCall@example.com"}
	carol := Identity{Subject: "carol@example.com"}
	nobody := Identity{Subject: "mallory@example.com", Groups: []string{"devs"}}
	for _, c := range []struct {
		who                 Identity
		action, target, env string
		ok                  bool
	}{
		{dev, Deploy, "api", "staging", true},
		{dev, Deploy, "api", "production", false},
		{dev, Approve, "shop", "staging", false},
		{oncall, Rollback, "api", "production", true},
		{oncall, Deploy, "api", "production", false},
		{carol, Approve, "shop", "production", true},
		{carol, Freeze, "shop", "", true},
		{carol, Approve, "billing", "production", false},
		{nobody, Pause, "api", "staging", false},
	} {
		err := p.Allows(c.who, c.action, c.target, c.env)
		if (err == nil) != c.ok {
			t.Errorf("%s %s %s %s: %v, want allowed=%t", c.who.Subject, c.action, c.target, c.env, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "no role in "+path+" grants it") {
			t.Errorf("the refusal names the policy: %v", err)
		}
	}
	if err := (*Policy)(nil).Allows(nobody, Deploy, "api", "production"); err != nil {
		t.Errorf("no policy: %v", err)
	}
	if err := os.WriteFile(path, []byte("roles:\n  - {name: x, members: [a], actions: [delete], services: ['*'], environments: ['*']}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), `actions: "delete" is not one of`) {
		t.Errorf("an unknown action: %v", err)
	}
}

func TestTheShippedRolesFileLoads(t *testing.T) {
	p, err := Load("../../deployments/roles.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Allows(Identity{Subject: "a@example.com", Groups: []string{"on-call"}}, Rollback, "api", "production"); err != nil {
		t.Fatal(err)
	}
	if err := p.Allows(Identity{Subject: "a@example.com", Groups: []string{"developers"}}, Approve, "shop", "production"); err == nil {
		t.Fatal("a developer approved production")
	}
}
