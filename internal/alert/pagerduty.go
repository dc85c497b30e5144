package alert

import (
	"github.com/switchyard/switchyard/internal/incident"

	"context"
	"fmt"
)

// PagerDuty sends Events API v2 events: trigger on open and on update (same
// dedup key, so PagerDuty folds them into one incident), resolve on resolve.
type PagerDuty struct {
	URL        string // default https://events.pagerduty.com/v2/enqueue
	RoutingKey string
}

// Send enqueues one event.
func (p *PagerDuty) Send(ctx context.Context, a incident.Action, in incident.Incident, ref string) (string, error) {
	url := p.URL
	if url == "" {
		url = "https://events.pagerduty.com/v2/enqueue"
	}
	ev := map[string]any{"routing_key": p.RoutingKey, "dedup_key": in.Key}
	switch a {
	case incident.Resolve:
		ev["event_action"] = "resolve"
	case incident.Event:
		return ref, nil // deployment events do not page
	default:
		sev := "error"
		if in.Critical {
			sev = "critical"
		}
		ev["event_action"] = "trigger"
		ev["payload"] = map[string]any{
			"summary": in.Title(), "source": in.Service + "/" + in.Environment, "severity": sev,
			"component": in.Service, "group": in.Environment, "class": in.Check,
			"custom_details": map[string]any{"detail": in.Detail, "updates": in.Updates},
		}
	}
	var out struct {
		Status   string `json:"status"`
		DedupKey string `json:"dedup_key"`
	}
	if err := postJSON(ctx, url, ev, &out); err != nil {
		return ref, err
	}
	if out.Status != "success" {
		return ref, fmt.Errorf("alert: pagerduty answered status %q", out.Status)
	}
	return out.DedupKey, nil
}
