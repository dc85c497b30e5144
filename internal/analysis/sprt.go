package analysis

import (
	"fmt"
	"math"
)

// SPRT is a sequential test of the canary's error rate against the live
// slot's, fed the requests and errors each slot served since the last look.
//
// Given the errors of one look, each came from the canary with probability
// π = λc·nc / (λc·nc + λb·nb) (n: requests, λ: error rates). H0 says the
// rates are equal (π0 = nc/(nc+nb)); H1 says the canary's is Ratio times the
// live's. The product of the looks' likelihood ratios is a martingale under
// H0, so by Ville's inequality it ever reaches 1/Alpha with probability at
// most Alpha, however long the step and however often it is looked at: the
// false-alarm rate is Alpha. It needs no estimate of the live slot's rate,
// and a live slot with no traffic (nb = 0) adds no evidence either way.
type SPRT struct {
	Ratio float64 // the canary/live error-rate ratio the test is tuned to (H1)
	Alpha float64 // false-alarm rate
	// MinErrorRate: a canary whose error rate so far is below it is not
	// stopped, however strong the evidence that it errs more than the live
	// slot (a live slot with no errors at all makes any error "worse").
	MinErrorRate float64

	LLR          float64 // log likelihood ratio so far
	Canary, Live Count   // totals so far
}

// Count is requests and errors.
type Count struct{ Requests, Errors int64 }

// Rate is Errors/Requests, 0 with no requests.
func (c Count) Rate() float64 {
	if c.Requests == 0 {
		return 0
	}
	return float64(c.Errors) / float64(c.Requests)
}

// Observe adds one look's increments and says whether to stop now.
func (s *SPRT) Observe(canary, live Count) bool {
	s.Canary.Requests += canary.Requests
	s.Canary.Errors += canary.Errors
	s.Live.Requests += live.Requests
	s.Live.Errors += live.Errors
	if canary.Requests > 0 && live.Requests > 0 && canary.Errors+live.Errors > 0 {
		nc, nb := float64(canary.Requests), float64(live.Requests)
		p0 := nc / (nc + nb)
		p1 := s.Ratio * nc / (s.Ratio*nc + nb)
		s.LLR += float64(canary.Errors)*math.Log(p1/p0) + float64(live.Errors)*math.Log((1-p1)/(1-p0))
	}
	return s.Stopped()
}

// Stopped says whether the evidence is strong enough to stop.
func (s *SPRT) Stopped() bool {
	return s.LLR >= math.Log(1/s.Alpha) && s.Canary.Rate() >= s.MinErrorRate && s.Canary.Rate() > s.Live.Rate()
}

func (s *SPRT) String() string {
	return fmt.Sprintf("canary %d/%d errors (%.2f%%), live %d/%d (%.2f%%), log-likelihood ratio %.2f of %.2f",
		s.Canary.Errors, s.Canary.Requests, 100*s.Canary.Rate(), s.Live.Errors, s.Live.Requests, 100*s.Live.Rate(),
		s.LLR, math.Log(1/s.Alpha))
}
