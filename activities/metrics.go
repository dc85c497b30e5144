package activities

import (
	"context"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/internal/rollout"
)

// meter records Switchyard's own series through the SDK's metrics handler,
// so they reach the same /metrics as the SDK's.
type meter struct{ h client.MetricsHandler }

func (a *Activities) metrics(ctx context.Context, service, env string) meter {
	return meter{activity.GetMetricsHandler(ctx).WithTags(map[string]string{"service": service, "environment": env})}
}

func (m meter) check(name string, passed bool) {
	result := "pass"
	if !passed {
		result = "fail"
	}
	m.h.WithTags(map[string]string{"check": name, "result": result}).Counter("switchyard_check_results").Inc(1)
}

func (m meter) alert(channel string, ok bool) {
	name := "switchyard_alerts_sent"
	if !ok {
		name = "switchyard_alerts_failed"
	}
	m.h.WithTags(map[string]string{"channel": channel}).Counter(name).Inc(1)
}

func (m meter) weights(w rollout.Weights) {
	m.h.WithTags(map[string]string{"slot": "blue"}).Gauge("switchyard_traffic_weight").Update(float64(w.Blue))
	m.h.WithTags(map[string]string{"slot": "green"}).Gauge("switchyard_traffic_weight").Update(float64(w.Green))
}
