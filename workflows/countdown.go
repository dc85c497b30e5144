package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// countdown is a durable clock that pausing stops: a rollout's bake and a
// gradual rollback's wait between steps (samples-go's updatable timer is
// the pattern). Each stretch it runs is one timer, cancelled when it is
// paused or stopped, so it never fires late and a worker crash loses nothing.
type countdown struct {
	paused func() bool
	// stop ends the countdown early (abort, promote, escalate).
	stop func() bool
	// ends is told when the countdown will end, or the zero time while paused.
	ends func(at time.Time)
	// spent, if set, is told of each stretch of time that ran.
	spent func(d time.Duration)
}

// run counts d of unpaused time down, and returns how much of it ran
// before it ended, was stopped, or ctx was cancelled.
func (c countdown) run(ctx workflow.Context, d time.Duration) (time.Duration, error) {
	var ran time.Duration
	for ran < d && !c.stop() {
		if c.paused() {
			c.ends(time.Time{})
			if err := workflow.Await(ctx, func() bool { return !c.paused() || c.stop() }); err != nil {
				return ran, err
			}
			continue
		}
		start := workflow.Now(ctx)
		c.ends(start.Add(d - ran))
		_, err := workflow.AwaitWithTimeout(ctx, d-ran, func() bool { return c.paused() || c.stop() })
		stretch := workflow.Now(ctx).Sub(start)
		ran += stretch
		if c.spent != nil {
			c.spent(stretch)
		}
		if err != nil {
			return ran, err
		}
	}
	return ran, nil
}
