package dashboard

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/workflows"
)

// The charts write only escaped text: a version that got past every check
// (a history recorded before versions were checked) cannot add markup.
func TestTheTimelineChartEscapesTheVersion(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	st := &workflows.Status{Version: `v1</title><script>alert(1)</script>`, Target: rollout.Green, StartedAt: t0, UpdatedAt: t0.Add(time.Minute),
		Timeline: []workflows.WeightChange{{At: t0.Add(10 * time.Second), Weights: rollout.Weights{Blue: 90, Green: 10}}}}
	svg := string(timelineChart(st))
	if strings.Contains(svg, "<script>") || !strings.Contains(svg, "&lt;script&gt;") {
		t.Fatalf("the version reached the SVG unescaped:\n%s", svg)
	}
}
