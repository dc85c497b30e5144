package alert

import (
	"github.com/switchyard/switchyard/internal/incident"

	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

var sample = incident.Incident{Key: "api/production/health:root", Service: "api", Environment: "production", Check: "health:root",
	Critical: true, Summary: "status 500, want 200", Detail: "GET http://127.0.0.1/healthz", OpenedAt: time.Unix(1800000000, 0)}

// receiver is a real HTTP server on 127.0.0.1 that records requests.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

func newReceiver(t *testing.T, answer func(r recorded) (int, string)) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec := recorded{r.Method, r.URL.Path, r.Header.Clone(), b}
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, rec)
		rc.mu.Unlock()
		code, body := 200, "ok"
		if answer != nil {
			code, body = answer(rec)
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func jsonOf(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body is not JSON: %s", b)
	}
	return m
}

func TestSlackPostsTheIncidentText(t *testing.T) {
	rc := newReceiver(t, nil)
	if _, err := (&Slack{URL: rc.URL + "/services/T000/B000/XXXX"}).Send(context.Background(), incident.Open, sample, ""); err != nil {
		t.Fatal(err)
	}
	r := rc.reqs[0]
	if r.Method != "POST" || r.Path != "/services/T000/B000/XXXX" || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("request: %s %s %v", r.Method, r.Path, r.Header)
	}
	if txt, _ := jsonOf(t, r.Body)["text"].(string); !strings.Contains(txt, "[api/production] health:root failing: status 500") {
		t.Fatalf("text: %q", txt)
	}
}

func TestWebhookIsSignedWithHMAC(t *testing.T) {
	rc := newReceiver(t, nil)
	w := &Webhook{URL: rc.URL + "/hook", Key: []byte("k3y")}
	if _, err := w.Send(context.Background(), incident.Resolve, sample, ""); err != nil {
		t.Fatal(err)
	}
	r := rc.reqs[0]
	if got, want := r.Header.Get("X-Switchyard-Signature"), Sign([]byte("k3y"), r.Body); got != want || !strings.HasPrefix(got, "sha256=") {
		t.Fatalf("signature %q, want %q", got, want)
	}
	m := jsonOf(t, r.Body)
	if m["action"] != "resolve" || m["incident"].(map[string]any)["key"] != sample.Key {
		t.Fatalf("body: %s", r.Body)
	}
}

func TestPagerDutyTriggersAndResolvesOneDedupKey(t *testing.T) {
	rc := newReceiver(t, func(r recorded) (int, string) {
		return 202, `{"status":"success","message":"Event processed","dedup_key":"api/production/health:root"}`
	})
	p := &PagerDuty{URL: rc.URL + "/v2/enqueue", RoutingKey: "R0UTING"}
	for _, a := range []incident.Action{incident.Open, incident.Update, incident.Resolve} {
		if _, err := p.Send(context.Background(), a, sample, ""); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"trigger", "trigger", "resolve"}
	for i, r := range rc.reqs {
		m := jsonOf(t, r.Body)
		if r.Path != "/v2/enqueue" || m["routing_key"] != "R0UTING" || m["dedup_key"] != sample.Key || m["event_action"] != want[i] {
			t.Fatalf("event %d: %s %s", i, r.Path, r.Body)
		}
		if i < 2 {
			pl := m["payload"].(map[string]any)
			if pl["severity"] != "critical" || pl["source"] != "api/production" || !strings.Contains(pl["summary"].(string), "health:root") {
				t.Fatalf("payload: %v", pl)
			}
		}
	}
}

func TestGitHubOpensCommentsAndClosesAnIssue(t *testing.T) {
	rc := newReceiver(t, func(r recorded) (int, string) {
		switch {
		case r.Method == "POST" && r.Path == "/api/v3/repos/acme/api/issues":
			return 201, `{"number": 7, "state": "open"}`
		case r.Method == "POST" && r.Path == "/api/v3/repos/acme/api/issues/7/comments":
			return 201, `{"id": 1}`
		case r.Method == "PATCH" && r.Path == "/api/v3/repos/acme/api/issues/7":
			return 200, `{"number": 7, "state": "closed"}`
		}
		return 404, `{"message":"Not Found"}`
	})
	g, err := NewGitHub(rc.URL+"/api/v3", "acme/api", "ghp_token", []string{"sample"})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := g.Send(context.Background(), incident.Open, sample, "")
	if err != nil || ref != "7" {
		t.Fatalf("open: ref %q, %v", ref, err)
	}
	if _, err := g.Send(context.Background(), incident.Update, sample, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Send(context.Background(), incident.Resolve, sample, ref); err != nil {
		t.Fatal(err)
	}
	if len(rc.reqs) != 4 {
		t.Fatalf("want open, comment, comment, close; got %d requests", len(rc.reqs))
	}
	open := jsonOf(t, rc.reqs[0].Body)
	if rc.reqs[0].Header.Get("Authorization") != "Bearer ghp_token" {
		t.Fatalf("auth header: %q", rc.reqs[0].Header.Get("Authorization"))
	}
	if !strings.Contains(open["title"].(string), "health:root failing") || open["labels"].([]any)[1] != "sample" {
		t.Fatalf("issue: %s", rc.reqs[0].Body)
	}
	if jsonOf(t, rc.reqs[3].Body)["state"] != "closed" {
		t.Fatalf("close: %s", rc.reqs[3].Body)
	}
}

func TestChannelDownFailsWithoutLeakingTheURL(t *testing.T) {
	rc := newReceiver(t, func(recorded) (int, string) { return 500, "boom" })
	_, err := (&Slack{URL: rc.URL + "/services/SECRET-PATH"}).Send(context.Background(), incident.Open, sample, "")
	if err == nil || !strings.Contains(err.Error(), "500") || strings.Contains(err.Error(), "SECRET-PATH") {
		t.Fatalf("got %v", err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	_, err = (&Slack{URL: "http://" + addr + "/services/SECRET-PATH"}).Send(context.Background(), incident.Open, sample, "")
	if err == nil || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "SECRET-PATH") {
		t.Fatalf("got %v", err)
	}
}

// smtpServer is a real SMTP server (go-smtp) on 127.0.0.1 that offers
// STARTTLS with a certificate made here and PLAIN auth.
type smtpServer struct {
	mu       sync.Mutex
	user     string
	from     string
	to       []string
	data     string
	tlsConns int
}

type smtpSession struct {
	s    *smtpServer
	conn *smtp.Conn
}

func (s *smtpServer) NewSession(c *smtp.Conn) (smtp.Session, error) { return &smtpSession{s, c}, nil }
func (x *smtpSession) AuthMechanisms() []string                     { return []string{sasl.Plain} }
func (x *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "alerts" || pass != "s3cret" {
			return errors.New("bad credentials")
		}
		x.s.mu.Lock()
		x.s.user = user
		x.s.mu.Unlock()
		return nil
	}), nil
}
func (x *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	x.s.from = from
	if _, ok := x.conn.TLSConnectionState(); ok {
		x.s.tlsConns++
	}
	return nil
}
func (x *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	x.s.to = append(x.s.to, to)
	return nil
}
func (x *smtpSession) Data(r io.Reader) error {
	b, _ := io.ReadAll(bufio.NewReader(r))
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	x.s.data = string(b)
	return nil
}
func (x *smtpSession) Reset()        {}
func (x *smtpSession) Logout() error { return nil }

func selfSigned(t *testing.T, dir string) (tls.Certificate, string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	_ = os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, ca
}

func startSMTP(t *testing.T, withTLS bool) (*smtpServer, string, string) {
	be := &smtpServer{}
	srv := smtp.NewServer(be)
	srv.Domain = "127.0.0.1"
	cert, ca := selfSigned(t, t.TempDir())
	if withTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	} else {
		srv.AllowInsecureAuth = true
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return be, l.Addr().String(), ca
}

func TestEmailUsesSTARTTLSAndAuth(t *testing.T) {
	be, addr, ca := startSMTP(t, true)
	e := &Email{Addr: addr, From: "switchyard@example.com", To: []string{"oncall@example.com"}, Username: "alerts", Password: "s3cret", CAFile: ca}
	if _, err := e.Send(context.Background(), incident.Open, sample, ""); err != nil {
		t.Fatal(err)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if be.user != "alerts" || be.tlsConns != 1 || be.from != "switchyard@example.com" || len(be.to) != 1 || be.to[0] != "oncall@example.com" {
		t.Fatalf("server saw user %q, tls %d, from %q, to %v", be.user, be.tlsConns, be.from, be.to)
	}
	for _, want := range []string{"Subject: [api/production] health:root failing", "X-Switchyard-Dedup-Key: api/production/health:root"} {
		if !strings.Contains(be.data, want) {
			t.Fatalf("message lacks %q:\n%s", want, be.data)
		}
	}
	wrong := *e
	wrong.Password = "nope"
	if _, err := wrong.Send(context.Background(), incident.Open, sample, ""); err == nil || !strings.Contains(err.Error(), "auth as alerts") {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestEmailRefusesAServerWithoutSTARTTLS(t *testing.T) {
	_, addr, _ := startSMTP(t, false)
	e := &Email{Addr: addr, From: "a@example.com", To: []string{"b@example.com"}, Username: "alerts", Password: "s3cret"}
	if _, err := e.Send(context.Background(), incident.Open, sample, ""); err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Fatalf("got %v", err)
	}
}

func TestAChannelThatHangsTimesOut(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(recorded) (int, string) { <-release; return 200, "late" })
	defer close(release)
	old := httpClient.Timeout
	httpClient.Timeout = 300 * time.Millisecond
	defer func() { httpClient.Timeout = old }()
	start := time.Now()
	_, err := (&Webhook{URL: rc.URL + "/hook", Key: []byte("k")}).Send(context.Background(), incident.Open, sample, "")
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("a hanging channel must fail by its timeout: %v after %s", err, time.Since(start))
	}
}

func TestAnEmailHeaderKeepsToItsLine(t *testing.T) {
	if got := headerValue("api v1\r\nBcc: everyone@example.com"); strings.ContainsAny(got, "\r\n") || got != "api v1  Bcc: everyone@example.com" {
		t.Fatalf("headerValue: %q", got)
	}
}
