package alert

import (
	"github.com/switchyard/switchyard/internal/incident"

	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"strings"
	"time"
)

// Email sends a message per incident change over SMTP; STARTTLS is required
// and PLAIN auth is used when a user is set.
type Email struct {
	Addr     string // host:port
	From     string
	To       []string
	Username string
	Password string
	CAFile   string
}

// Send delivers one message.
func (e *Email) Send(ctx context.Context, a incident.Action, in incident.Incident, ref string) (string, error) {
	host, _, err := net.SplitHostPort(e.Addr)
	if err != nil {
		return ref, fmt.Errorf("alert email: smtp %q: %w", e.Addr, err)
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", e.Addr)
	if err != nil {
		return ref, fmt.Errorf("alert email: %w", err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return ref, fmt.Errorf("alert email: %w", err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); !ok {
		return ref, fmt.Errorf("alert email: %s does not offer STARTTLS; refusing to send in the clear", e.Addr)
	}
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return ref, fmt.Errorf("alert email: caFile: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AppendCertsFromPEM(pem)
	}
	if err := c.StartTLS(cfg); err != nil {
		return ref, fmt.Errorf("alert email: STARTTLS: %w", err)
	}
	if e.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", e.Username, e.Password, host)); err != nil {
			return ref, fmt.Errorf("alert email: auth as %s: %w", e.Username, err)
		}
	}
	if err := c.Mail(e.From); err != nil {
		return ref, fmt.Errorf("alert email: MAIL FROM: %w", err)
	}
	for _, to := range e.To {
		if err := c.Rcpt(to); err != nil {
			return ref, fmt.Errorf("alert email: RCPT TO %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return ref, fmt.Errorf("alert email: DATA: %w", err)
	}
	subject := headerValue(in.Title())
	if a == incident.Resolve {
		subject = "Resolved: " + subject
	}
	msg := strings.Join([]string{
		"From: " + e.From, "To: " + strings.Join(e.To, ", "), "Subject: " + subject,
		"X-Switchyard-Dedup-Key: " + headerValue(in.Key), "Content-Type: text/plain; charset=utf-8", "", text(a, in), "",
	}, "\r\n")
	if _, err := w.Write([]byte(msg)); err != nil {
		return ref, fmt.Errorf("alert email: %w", err)
	}
	if err := w.Close(); err != nil {
		return ref, fmt.Errorf("alert email: %w", err)
	}
	return ref, c.Quit()
}

// headerValue keeps a header on its line: a CR or LF in a service name,
// version or reason would otherwise start a header of its own.
func headerValue(v string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r < 0x20 {
			return ' '
		}
		return r
	}, v)
}
