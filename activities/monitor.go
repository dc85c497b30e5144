package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"

	"github.com/switchyard/switchyard/internal/alert"
	"github.com/switchyard/switchyard/internal/check"
	"github.com/switchyard/switchyard/internal/incident"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// MonitorChecksInput is the live environment to check, and the router's
// counters at the previous run (the window of the traffic analysis).
type MonitorChecksInput struct {
	Spec     *spec.Service                     `json:"spec,omitempty"` // nil: the run's own (see spec.go)
	Previous map[rollout.Slot]rollout.Counters `json:"previous,omitempty"`
}

// MonitorChecksResult is one run's checks.
type MonitorChecksResult struct {
	Results  []rollout.CheckResult             `json:"results"`
	Counters map[rollout.Slot]rollout.Counters `json:"counters,omitempty"`
	Live     rollout.Slot                      `json:"live"`
}

// MonitorChecks checks the live environment: each endpoint's health, a short
// bounded probe and the router's per-slot counters against the limits, and
// security headers and certificate expiry. A failing check is a result.
func (a *Activities) MonitorChecks(ctx context.Context, in MonitorChecksInput) (*MonitorChecksResult, error) {
	svc, err := a.spec(ctx, in.Spec)
	if err != nil {
		return nil, err
	}
	m := svc.Monitor
	res := &MonitorChecksResult{}
	add := func(name string, critical bool, err error, ok string) {
		r := rollout.CheckResult{Name: name, Passed: err == nil, Critical: critical, Detail: ok, At: time.Now(), Slot: res.Live}
		if err != nil {
			r.Detail = err.Error()
		}
		res.Results = append(res.Results, r)
		a.metrics(ctx, svc.Name, svc.Environment).check(name, r.Passed)
	}
	if r, err := a.router(ctx, svc); err == nil {
		if w, err := r.Weights(ctx); err == nil {
			res.Live = w.Live()
		}
		if c, err := r.Counters(ctx); err == nil {
			res.Counters = c
			if prev, ok := in.Previous[res.Live]; ok && res.Live != rollout.None {
				cur := c[res.Live]
				reqs, errs := cur.Requests-prev.Requests, cur.Errors-prev.Errors
				var err error
				if reqs > 0 && float64(errs)/float64(reqs) > m.Performance.MaxErrorRate {
					err = fmt.Errorf("router counters: %d of %d requests to slot %s failed since the last run (limit %.1f%%)", errs, reqs, res.Live, 100*m.Performance.MaxErrorRate)
				}
				add("traffic", m.Performance.Critical, err, fmt.Sprintf("router counters: %d requests, %d errors since the last run", reqs, errs))
			}
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, e := range m.Endpoints {
		activity.RecordHeartbeat(ctx, e.Name)
		resp, err := get(ctx, client, e.URL)
		switch {
		case err != nil:
			add("health:"+e.Name, e.Critical, fmt.Errorf("GET %s: %w", e.URL, err), "")
			continue
		case resp.StatusCode != e.Status:
			add("health:"+e.Name, e.Critical, fmt.Errorf("GET %s: status %d, want %d", e.URL, resp.StatusCode, e.Status), "")
		default:
			add("health:"+e.Name, e.Critical, nil, fmt.Sprintf("GET %s: %d", e.URL, resp.StatusCode))
		}
		if err := security(resp, m.Security); len(m.Security.Headers) > 0 || resp.TLS != nil {
			add("security:"+e.Name, false, err, "required headers present"+certNote(resp))
		}
	}
	if len(m.Endpoints) > 0 {
		st := check.Probe(ctx, m.Endpoints[0].URL, m.Performance.Requests, 2)
		var err error
		switch {
		case st.ErrorRate() > m.Performance.MaxErrorRate:
			err = fmt.Errorf("probe: error rate %.1f%% over the %.1f%% limit (%s)", 100*st.ErrorRate(), 100*m.Performance.MaxErrorRate, st)
		case st.P95 > m.Performance.MaxP95.D():
			err = fmt.Errorf("probe: p95 %s over the %s limit (%s)", st.P95, m.Performance.MaxP95, st)
		}
		add("performance", m.Performance.Critical, err, "probe: "+st.String())
	}
	return res, nil
}

func get(ctx context.Context, c *http.Client, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, ue.Err
		}
		return nil, err
	}
	resp.Body.Close()
	return resp, nil
}

func security(resp *http.Response, s spec.Security) error {
	var missing []string
	for _, h := range s.Headers {
		if resp.Header.Get(h) == "" {
			missing = append(missing, h)
		}
	}
	var why []string
	if len(missing) > 0 {
		why = append(why, "missing headers: "+strings.Join(missing, ", "))
	}
	if days := certDays(resp); days >= 0 && days < s.TLSExpiryDays {
		why = append(why, fmt.Sprintf("TLS certificate expires in %d days (limit %d)", days, s.TLSExpiryDays))
	}
	if len(why) > 0 {
		return errors.New(strings.Join(why, "; "))
	}
	return nil
}

// certDays is the days left on the leaf certificate, or -1 over plain HTTP.
func certDays(resp *http.Response) int {
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return -1
	}
	return int(time.Until(resp.TLS.PeerCertificates[0].NotAfter).Hours() / 24)
}

func certNote(resp *http.Response) string {
	if d := certDays(resp); d >= 0 {
		return fmt.Sprintf("; certificate valid %d more days", d)
	}
	return ""
}

// LastMonitorState reads the result of the latest completed run the
// visibility query finds (the workflow writes it: it owns the names):
// incidents live in Temporal, not in a worker's memory.
func (a *Activities) LastMonitorState(ctx context.Context, query string) (*incident.State, error) {
	if a.Client == nil {
		return nil, errors.New("monitor: the worker has no Temporal client for reading past runs")
	}
	resp, err := a.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 20})
	if err != nil {
		return nil, err
	}
	var latest *struct{ id, run string }
	var latestClose time.Time
	for _, e := range resp.Executions {
		if e.Status != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			continue
		}
		if ct := e.CloseTime.AsTime(); latest == nil || ct.After(latestClose) {
			latest, latestClose = &struct{ id, run string }{e.Execution.WorkflowId, e.Execution.RunId}, ct
		}
	}
	if latest == nil {
		return nil, nil
	}
	var st incident.State
	if err := a.Client.GetWorkflow(ctx, latest.id, latest.run).Get(ctx, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// NotifyInput is one notice for one channel.
type NotifyInput struct {
	Spec    *spec.Service     `json:"spec,omitempty"` // nil: the run's own (see spec.go)
	Channel int               `json:"channel"`        // index into Spec.Alerts
	Action  incident.Action   `json:"action"`
	In      incident.Incident `json:"incident"`
}

// Notify sends a notice to one channel and returns the ref to keep. Each
// attempt is counted, so a channel that is down shows in the metrics.
func (a *Activities) Notify(ctx context.Context, in NotifyInput) (string, error) {
	svc, err := a.spec(ctx, in.Spec)
	if err != nil {
		return "", err
	}
	if in.Channel < 0 || in.Channel >= len(svc.Alerts) {
		return "", badInput(fmt.Errorf("notify: no alert channel %d", in.Channel))
	}
	al := svc.Alerts[in.Channel]
	name := incident.ChannelName(al.Kind, in.Channel)
	m := a.metrics(ctx, svc.Name, svc.Environment)
	ch, err := alert.New(al)
	if err != nil {
		m.alert(name, false)
		return "", badInput(err)
	}
	ref, err := ch.Send(ctx, in.Action, in.In, in.In.RefFor(name))
	m.alert(name, err == nil)
	return ref, err
}
