package alert

import (
	"github.com/switchyard/switchyard/internal/incident"

	"context"
)

// Slack posts to an incoming webhook (Teams' incoming webhooks take the same body).
type Slack struct{ URL string }

// Send posts {"text": ...}.
func (s *Slack) Send(ctx context.Context, a incident.Action, in incident.Incident, ref string) (string, error) {
	return ref, postJSON(ctx, s.URL, map[string]any{"text": text(a, in)}, nil)
}
