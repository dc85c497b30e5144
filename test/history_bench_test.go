package test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/proto"
)

// BenchmarkRolloutHistorySize: the history a 5-step rollout writes (v2 over
// a live v1, HAProxy, 1 s bakes with analysis, no scale-down delay), in
// events and bytes (the events' protobuf encoding, as the server stores
// them). Every scheduled activity's input is in it, so what activities are
// given is what a rollout costs the server.
func BenchmarkRolloutHistorySize(b *testing.B) {
	e := newEnv(b, opts{})
	e.given("v1")
	run := e.start("v2")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if o, err := e.starter.Wait(ctx, run); err != nil || o.Kind != "" {
		b.Fatalf("v2: %v %+v", err, o)
	}
	h := &historypb.History{}
	scheduled := 0
	byType := map[string]int{}
	it := e.starter.C.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		if ev.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
			scheduled++
		}
		h.Events = append(h.Events, ev)
		byType[strings.TrimPrefix(ev.GetEventType().String(), "EVENT_TYPE_")] += proto.Size(ev)
	}
	size := proto.Size(h)
	b.ReportMetric(float64(len(h.Events)), "events")
	b.ReportMetric(float64(size), "history-bytes")
	fmt.Printf("5-step rollout history: %d events, %d bytes, %d activities scheduled\n", len(h.Events), size, scheduled)
	types := slices.SortedFunc(maps.Keys(byType), func(a, b string) int { return byType[b] - byType[a] })
	for _, t := range types[:min(5, len(types))] {
		fmt.Printf("  %-40s %6d bytes\n", t, byType[t])
	}
}
