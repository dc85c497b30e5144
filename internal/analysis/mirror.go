package analysis

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/internal/rollout"
)

// The queries the mirror source answers, over the mirror step.
const (
	QMirrored        = "mirrored"          // requests copied to the new version
	QMismatchRate    = "mismatch_rate"     // compared answers that differed, 0…1
	QShadowErrorRate = "shadow_error_rate" // copies that failed or answered 5xx, 0…1
	QShadowLatencyMs = "shadow_latency_ms" // the copies' mean response time
)

// Mirror answers from the router's mirror counts at the step's start
// (Base) and now: shadow traffic judged like any traffic.
type Mirror struct {
	Base, Now rollout.MirrorCounters
}

var _ Source = (*Mirror)(nil)

func (m *Mirror) Name() string { return "mirror" }

// Value is the query's number over the step (the slot is the mirror's target).
func (m *Mirror) Value(_ context.Context, q Query) (float64, string, error) {
	d := m.Now.Since(m.Base)
	ratio := func(n, of int64, what string) (float64, string, error) {
		if of == 0 {
			return 0, "no mirrored request " + what + " yet", nil
		}
		return float64(n) / float64(of), "", nil
	}
	switch q.Text {
	case QMirrored:
		return float64(d.Mirrored), "", nil
	case QMismatchRate:
		return ratio(d.Mismatches, d.Compared, "compared")
	case QShadowErrorRate:
		return ratio(d.Errors, d.Answered, "answered")
	case QShadowLatencyMs:
		if d.Answered == 0 {
			return 0, "no mirrored request answered yet", nil
		}
		return d.LatencyMs / float64(d.Answered), "", nil
	}
	return 0, "", fmt.Errorf("the mirror source answers %s, %s, %s or %s, not %q", QMirrored, QMismatchRate, QShadowErrorRate, QShadowLatencyMs, q.Text)
}

// Series: the mirror keeps no history.
func (m *Mirror) Series(context.Context, Query, Window) ([]float64, string, error) {
	return nil, noHistory, nil
}
