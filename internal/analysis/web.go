package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"

	"k8s.io/client-go/util/jsonpath"

	"github.com/switchyard/switchyard/internal/spec"
)

// Web answers from any HTTP endpoint that returns JSON: the number (or, for
// a judge, the list of numbers) at the metric's jsonPath. argo-rollouts'
// "web" provider, for analysis systems Switchyard has no client for. The
// query is the metric's URL as rendered for the slot.
type Web struct {
	path    *jsonpath.JSONPath
	raw     string
	headers map[string]string
	client  *http.Client
}

// NewWeb reads the headers' values from the worker's environment; an error
// names the variable, never its value.
func NewWeb(w *spec.Web) (*Web, error) {
	p := jsonpath.New("metric")
	if err := p.Parse(w.JSONPath); err != nil {
		return nil, fmt.Errorf("web: jsonPath %q: %v", w.JSONPath, err)
	}
	out := &Web{path: p, raw: w.JSONPath, headers: map[string]string{}, client: &http.Client{Timeout: w.Timeout.D()}}
	return out, headersFromEnv("web", w.HeadersEnv, out.headers)
}

func (w *Web) Name() string { return "web" }

func (w *Web) Value(ctx context.Context, q Query) (float64, string, error) {
	v, why, err := w.numbers(ctx, q.Text)
	if err != nil || why != "" {
		return 0, why, err
	}
	if len(v) != 1 {
		return 0, fmt.Sprintf("%s found %d numbers, not one", w.raw, len(v)), nil
	}
	return v[0], "", nil
}

func (w *Web) Series(ctx context.Context, q Query, _ Window) ([]float64, string, error) {
	v, why, err := w.numbers(ctx, q.Text)
	if err != nil || why != "" {
		return nil, why, err
	}
	if len(v) < 3 {
		return nil, fmt.Sprintf("%s found %d values (a judge needs 3)", w.raw, len(v)), nil
	}
	return v, "", nil
}

// numbers GETs the URL and reads every number the path finds (a list is
// flattened); numbers written as strings are read too, NaNs dropped.
func (w *Web) numbers(ctx context.Context, u string) ([]float64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "application/json")
	for h, v := range w.headers {
		req.Header.Set(h, v)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		// the URL is the spec's, with no secret in it (headers are not quoted)
		return nil, "", fmt.Errorf("web source %s unreachable: %v", u, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, "", fmt.Errorf("web source %s: reading the answer: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("web source %s answered %s", u, resp.Status)
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, "", fmt.Errorf("web source %s answered no JSON: %v", u, err)
	}
	found, err := w.path.FindResults(doc)
	if err != nil {
		return nil, fmt.Sprintf("%s found nothing (%v)", w.raw, err), nil
	}
	var out []float64
	var add func(v any) bool
	add = func(v any) bool {
		switch x := v.(type) {
		case float64:
			if finite(x) {
				out = append(out, x)
			}
		case string:
			f, err := strconv.ParseFloat(x, 64)
			if err != nil {
				return false
			}
			if finite(f) {
				out = append(out, f)
			}
		case []any:
			for _, e := range x {
				if !add(e) {
					return false
				}
			}
		case nil:
		default:
			return false
		}
		return true
	}
	for _, set := range found {
		for _, r := range set {
			if r.Kind() == reflect.Interface && r.IsNil() {
				continue
			}
			if !add(r.Interface()) {
				return nil, "", fmt.Errorf("web source %s: %s found %s, not a number", u, w.raw, clip(r.Interface()))
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Sprintf("%s found no number", w.raw), nil
	}
	return out, "", nil
}

// clip shows a found value in an error, briefly.
func clip(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 60 {
		return string(b[:60]) + "…"
	}
	return string(b)
}
