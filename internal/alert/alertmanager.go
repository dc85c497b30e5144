package alert

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/incident"
)

// Alertmanager posts incidents to a Prometheus Alertmanager's API v2 as
// alerts labelled alertname=Switchyard, service, environment, check and
// severity; the same labels on resolve end the alert. Events are not
// alerts and are not sent.
type Alertmanager struct {
	URL   string
	Token string // bearer token, if the Alertmanager sits behind one
}

// AlertmanagerAlert is one alert of the API's POST /api/v2/alerts.
type AlertmanagerAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt,omitempty"`
}

// firingFor is how long an alert stays firing without news: the Monitor
// re-sends it on every failing run, far more often than this.
const firingFor = time.Hour

// Send posts the alert, firing or (on resolve) ended now.
func (m *Alertmanager) Send(ctx context.Context, a incident.Action, in incident.Incident, ref string) (string, error) {
	if a == incident.Event {
		return ref, nil
	}
	severity := "warning"
	if in.Critical {
		severity = "critical"
	}
	al := AlertmanagerAlert{
		Labels: map[string]string{"alertname": "Switchyard", "service": in.Service, "environment": in.Environment,
			"check": in.Check, "severity": severity},
		Annotations: map[string]string{"summary": in.Title(), "description": in.Detail},
		StartsAt:    in.OpenedAt,
		EndsAt:      time.Now().Add(firingFor),
	}
	if a == incident.Resolve {
		al.EndsAt = time.Now()
	}
	var headers map[string]string
	if m.Token != "" {
		headers = map[string]string{"Authorization": "Bearer " + m.Token}
	}
	body, err := json.Marshal([]AlertmanagerAlert{al})
	if err != nil {
		return ref, err
	}
	return ref, post(ctx, strings.TrimRight(m.URL, "/")+"/api/v2/alerts", body, headers, nil)
}
