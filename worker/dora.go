package worker

import (
	"context"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/starter"
)

// ReportDORA puts every service's DORA figures over the last `window` on
// the worker's /metrics, read from history now and every `every` (the same
// figures as history --stats), until ctx ends:
//
//	switchyard_dora_deploys_per_day, switchyard_dora_change_failure_rate,
//	switchyard_dora_time_to_restore_seconds, switchyard_dora_lead_time_seconds
//
// each labelled service and environment. A read that fails is retried at
// the next tick; the last figures stay.
func ReportDORA(ctx context.Context, s *starter.Starter, mh client.MetricsHandler, every, window time.Duration, logf func(string, ...any)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, every)
		all, err := s.Stats(rctx, window)
		cancel()
		if err != nil {
			logf("dora: %v", err)
		}
		for _, st := range all {
			h := mh.WithTags(map[string]string{"service": st.Service, "environment": st.Environment})
			h.Gauge("switchyard_dora_deploys_per_day").Update(st.DeploysPerDay)
			h.Gauge("switchyard_dora_change_failure_rate").Update(st.ChangeFailureRate)
			h.Gauge("switchyard_dora_time_to_restore_seconds").Update(st.TimeToRestore.Seconds())
			if st.LeadTimes > 0 {
				h.Gauge("switchyard_dora_lead_time_seconds").Update(st.LeadTime.Seconds())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
