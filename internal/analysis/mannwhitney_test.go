package analysis

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.12g, want %.12g (±%g)", what, got, want, tol)
	}
}

// The numbers are R's, as Kayenta's own test suite records them (source in
// the testdata file): the corrected z at the search bounds must match to
// 1e-6; the interval and estimate to 1e-3, since R finds them with
// uniroot(tol = 1e-4) on a step function whose steps we locate exactly.
func TestMannWhitneyMatchesRAsRecordedByKayenta(t *testing.T) {
	raw, err := os.ReadFile("testdata/kayenta_mannwhitney.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []struct {
			Name                               string
			Confidence                         float64
			Canary, Baseline                   []float64
			Low, High, Estimate                float64
			MuMin, MuMax                       float64
			FLower1, FUpper1, FLower2, FUpper2 float64
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) != 3 {
		t.Fatalf("%d cases in testdata, want 3", len(doc.Cases))
	}
	for _, c := range doc.Cases {
		t.Run(c.Name, func(t *testing.T) {
			r, err := MannWhitneyTest(c.Canary, c.Baseline, c.Confidence)
			if err != nil {
				t.Fatal(err)
			}
			near(t, "low", r.Low, c.Low, 1e-3)
			near(t, "high", r.High, c.High, 1e-3)
			near(t, "estimate", r.Estimate, c.Estimate, 1e-3)
			if c.MuMin == 0 {
				return
			}
			q := normalQuantile(1 - (1-c.Confidence)/2)
			near(t, "z quantile", q, 1.9599639845400536, 1e-9)
			zMin, _ := wilcoxonZ(c.Canary, c.Baseline, c.MuMin)
			zMax, _ := wilcoxonZ(c.Canary, c.Baseline, c.MuMax)
			near(t, "f.lower1", zMin-q, c.FLower1, 1e-6)
			near(t, "f.upper1", zMax-q, c.FUpper1, 1e-6)
			near(t, "f.lower2", zMin+q, c.FLower2, 1e-6)
			near(t, "f.upper2", zMax+q, c.FUpper2, 1e-6)
		})
	}
}

// Kayenta's small case: every canary value above every baseline value.
func TestMannWhitneySeparatedSamplesAsKayenta(t *testing.T) {
	r, err := MannWhitneyTest([]float64{10, 20, 30, 40}, []float64{1, 2, 3, 4}, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "low", r.Low, 6, 1e-9)
	near(t, "high", r.High, 39, 1e-9)
	near(t, "estimate", r.Estimate, 22.5, 1e-9)
	near(t, "U", r.U, 16, 0)
}

// ClickHouse's reference test for mannWhitneyUTest (tests/queries/
// 0_stateless/01560_mann_whitney.sql): two samples of 20 with ties, U = 223,
// two-sided p = 0.5426959774289482 (normal approximation, tie and
// continuity corrected).
func TestMannWhitneyPValueMatchesClickHouse(t *testing.T) {
	a := []float64{310, 195, 530, 155, 530, 245, 385, 450, 465, 545, 170, 180, 125, 180, 230, 75, 430, 480, 495, 295}
	b := []float64{116, 171, 176, 421, 111, 326, 481, 111, 346, 441, 261, 411, 206, 521, 456, 446, 296, 51, 426, 261}
	r, err := MannWhitneyTest(a, b, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "U", r.U, 223, 0)
	near(t, "p", r.P, 0.5426959774289482, 1e-9)
	if r.Low >= r.Estimate || r.Estimate >= r.High || r.Low > 0 || r.High < 0 {
		t.Errorf("interval %g..%g around %g should hold 0 (p = %g)", r.Low, r.High, r.Estimate, r.P)
	}
}

func TestMannWhitneyRefusesWhatItCannotTest(t *testing.T) {
	if _, err := MannWhitneyTest(nil, []float64{1}, 0.98); err == nil {
		t.Error("no canary data: want an error")
	}
	if _, err := MannWhitneyTest([]float64{2, 2}, []float64{2, 2, 2}, 0.98); err != ErrAllTied {
		t.Errorf("all tied: err = %v, want ErrAllTied", err)
	}
}
