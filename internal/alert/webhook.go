package alert

import (
	"github.com/switchyard/switchyard/internal/incident"

	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Webhook posts the incident as JSON, signed: X-Switchyard-Signature is
// "sha256=" + hex(HMAC-SHA256(key, body)), as GitHub signs its webhooks.
type Webhook struct {
	URL string
	Key []byte
}

// WebhookBody is what a generic webhook receives.
type WebhookBody struct {
	Action   incident.Action   `json:"action"`
	Incident incident.Incident `json:"incident"`
	Text     string            `json:"text"`
}

// Sign returns the signature header value for a body.
func Sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Send posts a signed WebhookBody.
func (w *Webhook) Send(ctx context.Context, a incident.Action, in incident.Incident, ref string) (string, error) {
	body, _ := json.Marshal(WebhookBody{Action: a, Incident: in, Text: text(a, in)})
	return ref, post(ctx, w.URL, body, map[string]string{"X-Switchyard-Signature": Sign(w.Key, body)}, nil)
}

func postJSON(ctx context.Context, url string, v any, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return post(ctx, url, body, nil, out)
}

// post sends JSON and fails on anything but 2xx, naming the host only: a
// webhook URL can carry a secret in its path.
func post(ctx context.Context, url string, body []byte, headers map[string]string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alert: bad URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "switchyard")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("alert: post to %s: %w", req.URL.Host, unwrapURL(err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alert: post to %s: %s: %.200s", req.URL.Host, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// unwrapURL drops the *url.Error wrapper, which would print the full URL.
func unwrapURL(err error) error {
	type unwrapper interface{ Unwrap() error }
	if u, ok := err.(unwrapper); ok && u.Unwrap() != nil {
		return u.Unwrap()
	}
	return err
}
