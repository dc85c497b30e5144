// Package alert sends incidents to the channels a spec names: one small
// interface, one file per channel. Every channel gets the same incident with
// the same dedup key, so a problem is one incident everywhere.
package alert

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/switchyard/switchyard/internal/incident"
	"github.com/switchyard/switchyard/internal/spec"
)

// Channel delivers incidents. ref is what the channel needs to find the
// incident again (a GitHub issue number); Send returns the ref to keep.
type Channel interface {
	Send(ctx context.Context, a incident.Action, in incident.Incident, ref string) (newRef string, err error)
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// New returns the channel a spec's alert describes, reading its secrets
// from the worker's environment.
func New(a spec.Alert) (Channel, error) {
	secret := func(env string) (string, error) {
		v := os.Getenv(env)
		if v == "" {
			return "", fmt.Errorf("alert %s: the worker has no environment variable %s", a.Kind, env)
		}
		return v, nil
	}
	switch a.Kind {
	case "slack":
		u, err := secret(a.URLEnv)
		if err != nil {
			return nil, err
		}
		return &Slack{URL: u}, nil
	case "webhook":
		k, err := secret(a.SecretEnv)
		if err != nil {
			return nil, err
		}
		return &Webhook{URL: a.URL, Key: []byte(k)}, nil
	case "pagerduty":
		k, err := secret(a.SecretEnv)
		if err != nil {
			return nil, err
		}
		return &PagerDuty{URL: a.URL, RoutingKey: k}, nil
	case "github":
		tok, err := secret(a.SecretEnv)
		if err != nil {
			return nil, err
		}
		return NewGitHub(a.URL, a.Repo, tok, a.Labels)
	case "alertmanager":
		am := &Alertmanager{URL: a.URL}
		if a.SecretEnv != "" {
			tok, err := secret(a.SecretEnv)
			if err != nil {
				return nil, err
			}
			am.Token = tok
		}
		return am, nil
	case "email":
		e := &Email{Addr: a.SMTP, From: a.From, To: a.To, CAFile: a.CAFile}
		if a.UsernameEnv != "" {
			var err error
			if e.Username, err = secret(a.UsernameEnv); err != nil {
				return nil, err
			}
			if e.Password, err = secret(a.PasswordEnv); err != nil {
				return nil, err
			}
		}
		return e, nil
	}
	return nil, fmt.Errorf("alert: unknown channel %q", a.Kind)
}

func text(a incident.Action, in incident.Incident) string {
	switch a {
	case incident.Open:
		return fmt.Sprintf("🔴 %s\n%s", in.Title(), in.Detail)
	case incident.Update:
		return fmt.Sprintf("🟠 still failing (%d checks since %s): %s\n%s", in.Updates+1, in.OpenedAt.UTC().Format(time.RFC3339), in.Title(), in.Detail)
	case incident.Resolve:
		return fmt.Sprintf("✅ resolved: [%s/%s] %s passes again", in.Service, in.Environment, in.Check)
	}
	return fmt.Sprintf("ℹ️ [%s/%s] %s", in.Service, in.Environment, in.Summary)
}
