package dashboard

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/switchyard/switchyard/starter"
)

// stubVisibility stands in for Temporal's list API (a stub: this unit test
// counts reads; the e2e tests read a real server): each list takes `delay`
// and answers nothing.
type stubVisibility struct {
	client.Client
	delay time.Duration
	lists atomic.Int32
}

func (c *stubVisibility) ListWorkflow(ctx context.Context, _ *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	c.lists.Add(1)
	select {
	case <-time.After(c.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &workflowservice.ListWorkflowExecutionsResponse{}, nil
}

// Fifty pages asking at once share one read of Temporal; a read younger
// than the interval is served as it is; an older one is served while one
// fresh read runs behind it, so a render never waits on Temporal once one
// read has been made.
func TestOverviewReadsAreSharedAndServedWhileRefreshedWithAStubVisibilityAPI(t *testing.T) {
	c := &stubVisibility{delay: 100 * time.Millisecond}
	s := &Server{Starter: &starter.Starter{C: c}, Every: 200 * time.Millisecond}
	s.Handler()
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.overviewData(context.Background()) }()
	}
	wg.Wait()
	first := c.lists.Load() // one overview: its runs and its monitoring runs
	if first == 0 || first > 2 {
		t.Fatalf("50 pages at once made %d list calls, want one overview's (≤ 2)", first)
	}
	_ = s.overviewData(context.Background())
	if c.lists.Load() != first {
		t.Fatal("a read younger than the interval was made again")
	}
	time.Sleep(300 * time.Millisecond) // older than the interval, younger than five
	t0 := time.Now()
	_ = s.overviewData(context.Background())
	if took := time.Since(t0); took > 50*time.Millisecond {
		t.Fatalf("a stale overview waited %s for the read behind it", took)
	}
	time.Sleep(150 * time.Millisecond)
	if n := c.lists.Load(); n <= first {
		t.Fatal("no fresh read was made behind the stale answer")
	}
}
