package analysis

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

// Prometheus queries a Prometheus server's HTTP API (v1).
type Prometheus struct {
	Address string
	headers map[string]string
	retries int
	client  *http.Client
}

// NewPrometheus reads the headers' values from the worker's environment;
// an error names the variable, never its value.
func NewPrometheus(p *spec.Prometheus) (*Prometheus, error) {
	c := &Prometheus{Address: strings.TrimRight(p.Address, "/"), headers: map[string]string{}, retries: p.Retries,
		client: &http.Client{Timeout: 10 * time.Second}}
	// a user:password@ in the address becomes a header: the address then
	// appears in errors and results with nothing secret in it
	if u, err := url.Parse(c.Address); err == nil && u.User != nil {
		pass, _ := u.User.Password()
		c.headers["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass))
		u.User = nil
		c.Address = u.String()
	}
	return c, headersFromEnv("prometheus", p.HeadersEnv, c.headers)
}

// headersFromEnv fills in each header from the worker variable named for
// it; an error names the variable, never a value.
func headersFromEnv(what string, names, into map[string]string) error {
	for h, env := range names {
		v, ok := os.LookupEnv(env)
		if !ok {
			return fmt.Errorf("%s: header %s: the worker has no environment variable %s", what, h, env)
		}
		into[h] = v
	}
	return nil
}

// Series is one series of a query's answer.
type Series struct {
	Labels map[string]string
	Values []float64
}

// BadQueryError is Prometheus refusing a query (HTTP 400/422): retrying
// will not help.
type BadQueryError struct{ Msg string }

func (e *BadQueryError) Error() string { return "prometheus refused the query: " + e.Msg }

// Instant evaluates a query at a moment.
func (p *Prometheus) Instant(ctx context.Context, query string, at time.Time) ([]Series, error) {
	v := url.Values{"query": {query}, "time": {stamp(at)}}
	return p.get(ctx, "/api/v1/query", v)
}

// Range evaluates a query over [start, end] every step.
func (p *Prometheus) Range(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]Series, error) {
	v := url.Values{"query": {query}, "start": {stamp(start)}, "end": {stamp(end)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	return p.get(ctx, "/api/v1/query_range", v)
}

func (p *Prometheus) Name() string { return "prometheus" }

// Value runs an instant query that must give one finite number.
func (p *Prometheus) Value(ctx context.Context, q Query) (float64, string, error) {
	s, err := p.Instant(ctx, q.Text, q.At)
	if err != nil {
		return 0, "", err
	}
	if why := notOne(s); why != "" {
		return 0, why, nil
	}
	if len(s[0].Values) != 1 || !finite(s[0].Values[0]) {
		return 0, "the query returned NaN or no value (no traffic in the interval?)", nil
	}
	return s[0].Values[0], "", nil
}

// Series runs a range query over the window that must give one series; NaNs are dropped.
func (p *Prometheus) Series(ctx context.Context, q Query, w Window) ([]float64, string, error) {
	s, err := p.Range(ctx, q.Text, w.Start, w.End, w.Step)
	if err != nil {
		return nil, "", err
	}
	if why := notOne(s); why != "" {
		return nil, why, nil
	}
	var v []float64
	for _, f := range s[0].Values {
		if finite(f) {
			v = append(v, f)
		}
	}
	if len(v) < 3 {
		return nil, fmt.Sprintf("only %d values in the step so far (need 3)", len(v)), nil
	}
	return v, "", nil
}

// notOne says what is wrong with an answer that is not exactly one series.
func notOne(s []Series) string {
	switch {
	case len(s) == 0:
		return "the query returned no series"
	case len(s) > 1:
		return fmt.Sprintf("the query returned %d series, not one (aggregate it, e.g. with sum)", len(s))
	}
	return ""
}

func stamp(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64) }

// get asks with bounded retries: a refused query is returned at once, an
// unreachable or failing server after the retries.
func (p *Prometheus) get(ctx context.Context, path string, v url.Values) ([]Series, error) {
	var err error
	for attempt := 0; attempt <= p.retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		var s []Series
		if s, err = p.once(ctx, path, v); err == nil {
			return s, nil
		}
		if _, bad := err.(*BadQueryError); bad || ctx.Err() != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w (after %d tries)", err, p.retries+1)
}

func (p *Prometheus) once(ctx context.Context, path string, v url.Values) ([]Series, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.Address+path, strings.NewReader(v.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for h, val := range p.headers {
		req.Header.Set(h, val)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		// the URL is ours, the error may quote it: no secret is in it (headers are not)
		return nil, fmt.Errorf("prometheus at %s unreachable: %v", p.Address, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("prometheus at %s: reading the answer: %v", p.Address, err)
	}
	var r struct {
		Status    string `json:"status"`
		Error     string `json:"error"`
		ErrorType string `json:"errorType"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("prometheus at %s answered %s, not its API's JSON", p.Address, resp.Status)
	}
	if r.Status != "success" {
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnprocessableEntity {
			return nil, &BadQueryError{Msg: r.ErrorType + ": " + r.Error}
		}
		return nil, fmt.Errorf("prometheus at %s: %s: %s", p.Address, r.ErrorType, r.Error)
	}
	return decode(r.Data.ResultType, r.Data.Result)
}

func decode(kind string, raw json.RawMessage) ([]Series, error) {
	switch kind {
	case "scalar":
		var pt []any
		if err := json.Unmarshal(raw, &pt); err != nil {
			return nil, err
		}
		return []Series{{Values: []float64{value(pt)}}}, nil
	case "vector", "matrix":
		var rs []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
			Values [][]any           `json:"values"`
		}
		if err := json.Unmarshal(raw, &rs); err != nil {
			return nil, err
		}
		out := make([]Series, len(rs))
		for i, r := range rs {
			out[i].Labels = r.Metric
			if r.Value != nil {
				out[i].Values = []float64{value(r.Value)}
			}
			for _, pt := range r.Values {
				out[i].Values = append(out[i].Values, value(pt))
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("prometheus answered a %s, not a vector or matrix", kind)
}

// value reads a [time, "value"] pair; anything unreadable is NaN.
func value(pt []any) float64 {
	if len(pt) != 2 {
		return math.NaN()
	}
	s, _ := pt[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}
