package analysis

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// simulate runs one step of 60 s at 500 req/s, the canary taking weight %
// of requests in strict rotation (as HAProxy's weighted round robin does),
// looked at every 250 ms. It returns whether the test stopped and how many
// canary requests it had seen then.
func simulate(r *rand.Rand, s SPRT, weight int, canaryRate, liveRate float64) (bool, int64) {
	const perLook, looks = 125, 240
	acc := 0
	for range looks {
		var c, l Count
		for range perLook {
			acc += weight
			if acc >= 100 {
				acc -= 100
				c.Requests++
				if r.Float64() < canaryRate {
					c.Errors++
				}
			} else {
				l.Requests++
				if r.Float64() < liveRate {
					l.Errors++
				}
			}
		}
		if s.Observe(c, l) {
			return true, s.Canary.Requests
		}
	}
	return false, s.Canary.Requests
}

func defaults() SPRT { return SPRT{Ratio: 10, Alpha: 0.01, MinErrorRate: 0.01} }

// A release as good as the live one (both 0.1 % errors) is stopped in at
// most 1 % of 10,000 seeded runs, at each weight; without the minimum error
// rate too (the bound is the test's own).
func TestSPRTRarelyStopsAGoodRelease(t *testing.T) {
	for _, weight := range []int{10, 50} {
		for _, min := range []float64{0.01, 0} {
			r := rand.New(rand.NewPCG(1, uint64(weight)))
			s := defaults()
			s.MinErrorRate = min
			stopped := 0
			for range 10000 {
				if ok, _ := simulate(r, s, weight, 0.001, 0.001); ok {
					stopped++
				}
			}
			t.Logf("weight %d%%, minErrorRate %g: %d of 10000 good releases stopped (%.2f%%)", weight, min, stopped, float64(stopped)/100)
			if stopped > 100 {
				t.Errorf("weight %d%%, minErrorRate %g: %d of 10000 good releases stopped, want ≤ 100 (1%%)", weight, min, stopped)
			}
		}
	}
}

// A release with 10 % errors against a live slot with 0.1 % is stopped in
// every one of 10,000 seeded runs, after few requests.
func TestSPRTStopsABadReleaseQuickly(t *testing.T) {
	for _, weight := range []int{10, 25} {
		r := rand.New(rand.NewPCG(2, uint64(weight)))
		var needed []int64
		for range 10000 {
			ok, n := simulate(r, defaults(), weight, 0.10, 0.001)
			if !ok {
				t.Fatalf("weight %d%%: a 10%%-error release was not stopped in 60 s (%d canary requests)", weight, n)
			}
			needed = append(needed, n)
		}
		slices.Sort(needed)
		p50, p99 := needed[len(needed)/2], needed[len(needed)*99/100]
		t.Logf("weight %d%%: 10000 of 10000 bad releases stopped; canary requests needed p50 %d, p99 %d, max %d (looks every 125 requests)",
			weight, p50, p99, needed[len(needed)-1])
		if p99 > 200 {
			t.Errorf("weight %d%%: p99 %d canary requests to stop a 10%%-error release, want ≤ 200", weight, p99)
		}
	}
}

// The arithmetic on a worked case: 10 % weight, no live errors; each canary
// error adds ln(π1/π0) = ln((10·0.1/(10·0.1+0.9))/0.1) ≈ 1.661, so three
// errors (4.98) cross ln(1/0.01) ≈ 4.605 and two (3.32) do not.
func TestSPRTArithmetic(t *testing.T) {
	s := defaults()
	if s.Observe(Count{10, 2}, Count{90, 0}) {
		t.Fatalf("stopped after 2 errors: %s", &s)
	}
	near(t, "LLR after 2", s.LLR, 2*1.660731207, 1e-6)
	if !s.Observe(Count{10, 1}, Count{90, 0}) {
		t.Fatalf("not stopped after 3 errors: %s", &s)
	}
	// a live error is evidence the other way: ln((1−π1)/(1−π0)) ≈ −0.642
	s = defaults()
	s.Observe(Count{10, 0}, Count{90, 1})
	near(t, "LLR after a live error", s.LLR, -0.641853886, 1e-6)
	// no live traffic: no evidence at all
	s = defaults()
	s.Observe(Count{100, 50}, Count{0, 0})
	if s.LLR != 0 {
		t.Errorf("LLR with no live traffic = %g, want 0", s.LLR)
	}
}
