package analysis

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
)

func readTargets(t *testing.T, path string) []TargetGroup {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g []TargetGroup
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("%s is not a file_sd list: %v\n%s", path, err, raw)
	}
	return g
}

// Slots of two services share a file; setting a slot replaces its entry,
// an empty address list removes it, and the others stay.
func TestSetTargetsKeepsEveryServicesSlots(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sd", "targets.json")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(SetTargets(path, "api", "prod", rollout.Blue, "v1", []string{"127.0.0.1:8081"}, "/metrics"))
	must(SetTargets(path, "web", "prod", rollout.Green, "v7", []string{"127.0.0.1:9082", "127.0.0.1:9083"}, ""))
	must(SetTargets(path, "api", "prod", rollout.Green, "v2", []string{"127.0.0.1:8082"}, "/metrics"))
	must(SetTargets(path, "api", "prod", rollout.Blue, "v3", []string{"127.0.0.1:8081"}, "/metrics"))
	g := readTargets(t, path)
	if len(g) != 3 {
		t.Fatalf("%d groups, want 3: %+v", len(g), g)
	}
	if l := g[0].Labels; l["service"] != "api" || l["slot"] != "blue" || l["version"] != "v3" || l["environment"] != "prod" || l["__metrics_path__"] != "/metrics" {
		t.Errorf("first group: %+v", g[0])
	}
	if g[2].Labels["service"] != "web" || len(g[2].Targets) != 2 {
		t.Errorf("web's group: %+v", g[2])
	}
	must(SetTargets(path, "api", "prod", rollout.Blue, "", nil, ""))
	if g := readTargets(t, path); len(g) != 2 || g[0].Labels["slot"] != "green" {
		t.Errorf("after removing api's blue: %+v", g)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".targets-*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestRenderFillsEveryVariableForEachSlot(t *testing.T) {
	v := Vars{Service: "api", Environment: "prod", Slot: rollout.Green, BaselineSlot: rollout.Blue, Version: "v2", LiveVersion: "v1", Interval: 90 * time.Second}
	q := `x{service="{{service}}",env="{{ environment }}",slot="{{slot}}",other="{{baseline_slot}}",v="{{version}}"}[{{interval}}]`
	if got := Render(q, v, false); got != `x{service="api",env="prod",slot="green",other="blue",v="v2"}[90s]` {
		t.Errorf("new slot: %s", got)
	}
	if got := Render(q, v, true); got != `x{service="api",env="prod",slot="blue",other="green",v="v1"}[90s]` {
		t.Errorf("live slot: %s", got)
	}
	v.Interval = 1500 * time.Millisecond
	if got := Render("[{{interval}}]", v, false); got != "[1500ms]" || strings.Contains(got, "{{") {
		t.Errorf("sub-second interval: %s", got)
	}
}
