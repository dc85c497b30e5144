// Package analysis judges a new slot on its metrics: the Prometheus
// provider, the Mann-Whitney judge against the live slot, the sequential
// early-stop test on error counts, and the measurement every decision keeps.
package analysis

import (
	"errors"
	"math"
	"slices"
	"sort"
)

// MannWhitney is the two-sample Wilcoxon rank-sum test of canary x against
// baseline y with the Hodges-Lehmann estimate of the shift x−y and its
// confidence interval.
type MannWhitney struct {
	U float64 // of x: pairs (xi, yj) with xi > yj, ties counting ½
	// P is the two-sided p-value (normal approximation with tie and
	// continuity correction, as R's wilcox.test(correct = TRUE, exact = FALSE)).
	P float64
	// Estimate is the Hodges-Lehmann shift: the median of all xi − yj.
	Estimate float64
	// Low and High bound the shift at the confidence level, found as R and
	// Kayenta do: the shifts mu where the corrected z of x−mu against y
	// crosses ∓ the normal quantile.
	Low, High float64
}

// ErrAllTied is returned when every observation is the same value: there is
// no spread to test (a judge passes such a metric, as Kayenta does).
var ErrAllTied = errors.New("all observations are tied")

// MannWhitneyTest runs the test at the given two-sided confidence (0.98 is Kayenta's).
func MannWhitneyTest(x, y []float64, confidence float64) (MannWhitney, error) {
	if len(x) == 0 || len(y) == 0 {
		return MannWhitney{}, errors.New("no data")
	}
	var r MannWhitney
	z, sigma := wilcoxonZ(x, y, 0)
	if sigma == 0 {
		return r, ErrAllTied
	}
	r.U = uStatistic(x, y)
	r.P = math.Min(1, 2*normalSF(math.Abs(z)))
	r.Estimate = hodgesLehmann(x, y)
	q := normalQuantile(1 - (1-confidence)/2)
	lo, hi := slices.Min(x)-slices.Max(y), slices.Max(x)-slices.Min(y)
	// z(mu) falls as mu grows: the interval is where −q ≤ z(mu) ≤ q
	r.Low = root(func(mu float64) float64 { z, _ := wilcoxonZ(x, y, mu); return z - q }, lo, hi)
	r.High = root(func(mu float64) float64 { z, _ := wilcoxonZ(x, y, mu); return z + q }, lo, hi)
	return r, nil
}

// wilcoxonZ is the continuity-corrected standard score of the rank sum of
// x−mu among y, with the variance corrected for ties.
func wilcoxonZ(x, y []float64, mu float64) (z, sigma float64) {
	nx, ny := float64(len(x)), float64(len(y))
	all := make([]obs, 0, len(x)+len(y))
	for _, v := range x {
		all = append(all, obs{v - mu, true})
	}
	for _, v := range y {
		all = append(all, obs{v, false})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	var rankSumX, ties float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		rank := float64(i+j+1) / 2 // average of ranks i+1..j
		for k := i; k < j; k++ {
			if all[k].x {
				rankSumX += rank
			}
		}
		t := float64(j - i)
		ties += t*t*t - t
		i = j
	}
	dz := rankSumX - nx*(nx+1)/2 - nx*ny/2
	n := nx + ny
	sigma = math.Sqrt(nx * ny / 12 * ((n + 1) - ties/(n*(n-1))))
	if sigma == 0 {
		return 0, 0
	}
	corr := 0.0
	if dz > 0 {
		corr = 0.5
	} else if dz < 0 {
		corr = -0.5
	}
	return (dz - corr) / sigma, sigma
}

type obs struct {
	v float64
	x bool
}

func uStatistic(x, y []float64) float64 {
	ys := slices.Clone(y)
	slices.Sort(ys)
	u := 0.0
	for _, v := range x {
		below := sort.SearchFloat64s(ys, v)                                 // yj < v
		upTo := sort.Search(len(ys), func(i int) bool { return ys[i] > v }) // yj ≤ v
		u += float64(below) + float64(upTo-below)/2
	}
	return u
}

// hodgesLehmann is the median of all pairwise differences xi − yj.
func hodgesLehmann(x, y []float64) float64 {
	d := make([]float64, 0, len(x)*len(y))
	for _, a := range x {
		for _, b := range y {
			d = append(d, a-b)
		}
	}
	slices.Sort(d)
	return sortedMedian(d)
}

// sortedMedian is the median of an ascending slice.
func sortedMedian(s []float64) float64 {
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// root finds where a non-increasing step function f crosses zero in [lo,
// hi] by bisection, to the precision of the data: the point of the step.
func root(f func(float64) float64, lo, hi float64) float64 {
	if f(lo) <= 0 {
		return lo
	}
	if f(hi) >= 0 {
		return hi
	}
	for range 200 {
		mid := lo + (hi-lo)/2
		if mid == lo || mid == hi {
			break
		}
		if f(mid) > 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo + (hi-lo)/2
}

// normalSF is P(Z > z) for a standard normal Z.
func normalSF(z float64) float64 { return 0.5 * math.Erfc(z/math.Sqrt2) }

// normalQuantile is the z with P(Z ≤ z) = p.
func normalQuantile(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }
