package incident

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
)

func TestThreeFailingRunsOpenOneIncidentThenAPassResolvesIt(t *testing.T) {
	fail := []rollout.CheckResult{{Name: "health:root", Passed: false, Detail: "status 500"}, {Name: "performance", Passed: true}}
	pass := []rollout.CheckResult{{Name: "health:root", Passed: true}, {Name: "performance", Passed: true}}
	var open []Incident
	var all []Notice
	now := time.Unix(1800000000, 0)
	for i := 0; i < 3; i++ {
		var n []Notice
		open, n = Reconcile(open, fail, "api", "production", now.Add(time.Duration(i)*5*time.Minute))
		all = append(all, n...)
		if len(open) != 1 {
			t.Fatalf("run %d: %d open incidents, want 1", i+1, len(open))
		}
	}
	if len(all) != 3 || all[0].Action != Open || all[1].Action != Update || all[2].Action != Update {
		t.Fatalf("notices: %+v", all)
	}
	if open[0].Updates != 2 || open[0].Key != "api/production/health:root" || !open[0].OpenedAt.Equal(now) {
		t.Fatalf("incident: %+v", open[0])
	}
	open, n := Reconcile(open, pass, "api", "production", now.Add(15*time.Minute))
	if len(open) != 0 || len(n) != 1 || n[0].Action != Resolve || n[0].Incident.Key != "api/production/health:root" {
		t.Fatalf("after a pass: open %v, notices %+v", open, n)
	}
	open, n = Reconcile(open, pass, "api", "production", now.Add(20*time.Minute))
	if len(open) != 0 || len(n) != 0 {
		t.Fatalf("a second pass says nothing: open %v, notices %+v", open, n)
	}
}

func TestRefsSurviveUpdates(t *testing.T) {
	open := []Incident{{Key: "a/b/c", Check: "c", Refs: []Ref{{"github#0", "7"}}}}
	open, n := Reconcile(open, []rollout.CheckResult{{Name: "c", Passed: false}}, "a", "b", time.Now())
	if open[0].RefFor("github#0") != "7" || n[0].Incident.RefFor("github#0") != "7" {
		t.Fatalf("ref lost: %+v", open)
	}
}
