package alert

import (
	"github.com/switchyard/switchyard/internal/incident"

	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/go-github/v66/github"
)

// GitHub opens an issue per incident, comments on updates, and closes it
// when the incident resolves. The ref is the issue number.
type GitHub struct {
	client      *github.Client
	owner, repo string
	labels      []string
}

// NewGitHub returns a GitHub channel; apiURL is empty for github.com or the
// API root of a GitHub Enterprise server.
func NewGitHub(apiURL, repo, token string, labels []string) (*GitHub, error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" {
		return nil, fmt.Errorf("alert github: repo %q is not owner/name", repo)
	}
	c := github.NewClient(httpClient).WithAuthToken(token)
	if apiURL != "" {
		u, err := url.Parse(strings.TrimSuffix(apiURL, "/") + "/")
		if err != nil {
			return nil, fmt.Errorf("alert github: url: %w", err)
		}
		c.BaseURL = u
	}
	return &GitHub{client: c, owner: owner, repo: name, labels: labels}, nil
}

// Send opens, comments on, or closes the incident's issue.
func (g *GitHub) Send(ctx context.Context, a incident.Action, in incident.Incident, ref string) (string, error) {
	switch a {
	case incident.Open, incident.Event:
		labels := append([]string{"switchyard"}, g.labels...)
		title := in.Title()
		if a == incident.Event {
			title = fmt.Sprintf("[%s/%s] %s", in.Service, in.Environment, in.Summary)
		}
		is, _, err := g.client.Issues.Create(ctx, g.owner, g.repo, &github.IssueRequest{
			Title: &title, Body: github.String(text(a, in) + "\n\nDedup key: `" + in.Key + "`"), Labels: &labels,
		})
		if err != nil {
			return ref, fmt.Errorf("alert github: open issue in %s/%s: %w", g.owner, g.repo, err)
		}
		if a == incident.Event {
			return ref, nil
		}
		return strconv.Itoa(is.GetNumber()), nil
	}
	n, err := strconv.Atoi(ref)
	if err != nil {
		return ref, fmt.Errorf("alert github: no issue number recorded for %s", in.Key)
	}
	if _, _, err := g.client.Issues.CreateComment(ctx, g.owner, g.repo, n, &github.IssueComment{Body: github.String(text(a, in))}); err != nil {
		return ref, fmt.Errorf("alert github: comment on #%d: %w", n, err)
	}
	if a == incident.Resolve {
		if _, _, err := g.client.Issues.Edit(ctx, g.owner, g.repo, n, &github.IssueRequest{State: github.String("closed")}); err != nil {
			return ref, fmt.Errorf("alert github: close #%d: %w", n, err)
		}
	}
	return ref, nil
}
