// Command switchyard drives durable blue-green rollouts on Temporal.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/starter"
	"github.com/switchyard/switchyard/workflows"
)

// Exit codes, documented in the README.
const (
	exitOK         = 0
	exitError      = 1 // could not do it: connection, server, internal error
	exitBadInput   = 2 // invalid spec, flag or argument
	exitRolledBack = 3 // the rollout rolled back (abort or failed analysis)
	exitFailed     = 4 // the rollout failed before any traffic moved
	exitConflict   = 5 // another rollout runs, or the request was refused
	exitIncidents  = 6 // monitor run: incidents are open
)

// exitError carries an exit code up to main.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &codeError{code, err}
}

type conn struct {
	address, namespace, taskQueue string
	tlsCert, tlsKey, tlsCA        string
	apiKey                        string
	metrics                       client.MetricsHandler // set by commands that serve /metrics
	// logger is the SDK's log; commands that run a worker set it from
	// --log-level, the others keep the SDK quiet.
	logger sdklog.Logger
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (c *conn) flags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&c.address, "address", envOr("TEMPORAL_ADDRESS", "localhost:7233"), "Temporal frontend host:port ($TEMPORAL_ADDRESS)")
	f.StringVarP(&c.namespace, "namespace", "n", envOr("TEMPORAL_NAMESPACE", "default"), "Temporal namespace ($TEMPORAL_NAMESPACE)")
	f.StringVar(&c.taskQueue, "task-queue", envOr("SWITCHYARD_TASK_QUEUE", workflows.TaskQueue), "task queue of the workers ($SWITCHYARD_TASK_QUEUE)")
	f.StringVar(&c.tlsCert, "tls-cert", os.Getenv("TEMPORAL_TLS_CLIENT_CERT_PATH"), "client certificate file for mTLS ($TEMPORAL_TLS_CLIENT_CERT_PATH)")
	f.StringVar(&c.tlsKey, "tls-key", os.Getenv("TEMPORAL_TLS_CLIENT_KEY_PATH"), "client key file for mTLS ($TEMPORAL_TLS_CLIENT_KEY_PATH)")
	f.StringVar(&c.tlsCA, "tls-ca", os.Getenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH"), "CA certificate file of the server ($TEMPORAL_TLS_SERVER_CA_CERT_PATH)")
	// the API key is read from the environment only, so it never shows in ps
	c.apiKey = os.Getenv("TEMPORAL_API_KEY")
}

func (c *conn) dial() (client.Client, error) {
	opts := client.Options{HostPort: c.address, Namespace: c.namespace,
		Logger: c.logger, MetricsHandler: c.metrics}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if c.tlsCert != "" || c.tlsKey != "" || c.tlsCA != "" || c.apiKey != "" {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.tlsCert != "" || c.tlsKey != "" {
			cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
			if err != nil {
				return nil, withCode(exitBadInput, fmt.Errorf("--tls-cert/--tls-key: %w", err))
			}
			t.Certificates = []tls.Certificate{cert}
		}
		if c.tlsCA != "" {
			pem, err := os.ReadFile(c.tlsCA)
			if err != nil {
				return nil, withCode(exitBadInput, fmt.Errorf("--tls-ca: %w", err))
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, withCode(exitBadInput, fmt.Errorf("--tls-ca: no certificate in %s", c.tlsCA))
			}
			t.RootCAs = pool
		}
		opts.ConnectionOptions.TLS = t
	}
	if c.apiKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(c.apiKey)
	}
	cl, err := client.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w (is `switchyard dev` or a Temporal server running? set --address or TEMPORAL_ADDRESS)", c.address, c.namespace, err)
	}
	return cl, nil
}

func (c *conn) starter() (*starter.Starter, func(), error) {
	cl, err := c.dial()
	if err != nil {
		return nil, nil, err
	}
	return &starter.Starter{C: cl, TaskQueue: c.taskQueue}, cl.Close, nil
}

// withStarter connects to Temporal, runs fn, and disconnects.
func (c *conn) withStarter(fn func(*starter.Starter) error) error {
	s, closeFn, err := c.starter()
	if err != nil {
		return err
	}
	defer closeFn()
	return fn(s)
}

func who() string {
	// with a token, who asks is the token's subject: a server running
	// Switchyard's authorizer refuses a request that says otherwise
	if sub := tokenSubject(os.Getenv("TEMPORAL_API_KEY")); sub != "" {
		return sub
	}
	name := os.Getenv("SWITCHYARD_ACTOR")
	if name != "" {
		return name
	}
	if os.Getenv("CI") != "" {
		if job := os.Getenv("GITHUB_WORKFLOW"); job != "" {
			return "ci:" + job
		}
		return "ci"
	}
	u, err := user.Current()
	host, _ := os.Hostname()
	if err != nil {
		return "unknown@" + host
	}
	return u.Username + "@" + host
}

func main() {
	var c conn
	root := &cobra.Command{
		Use:           "switchyard",
		Short:         "Durable blue-green rollouts on Temporal",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	c.flags(root)
	root.AddCommand(devCmd(&c), haproxyRoutesCmd(), workerCmd(&c), dashboardCmd(&c), deployCmd(&c), statusCmd(&c), watchCmd(&c),
		controlCmd(&c, workflows.Pause, "Hold a rollout at its current step (the bake clock stops)"),
		controlCmd(&c, workflows.Resume, "Continue a paused rollout"),
		abortCmd(&c), promoteCmd(&c), validateCmd(), historyCmd(&c), demoCmd(),
		rollbackCmd(&c), rollbackControlCmd(&c), retireCmd(&c), monitorCmd(&c), releaseCmd(&c), freezeCmd(&c), unfreezeCmd(&c), temporalServerCmd())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		msg := err.Error()
		var denied *serviceerror.PermissionDenied
		if errors.As(err, &denied) {
			if denied.Reason != "" { // Switchyard's authorizer says which role is missing
				msg += ": " + denied.Reason
			} else {
				msg += " — Temporal refused the call: permission denied. Set TEMPORAL_API_KEY to a token your identity provider issued " +
					"with permission on the namespace (default:write to deploy and control, default:read to look), or use --tls-cert/--tls-key"
			}
		}
		fmt.Fprintln(os.Stderr, "switchyard: "+msg)
		os.Exit(exitCode(err))
	}
}

func exitCode(err error) int {
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	var probs spec.Problems
	var ar *starter.AlreadyRunningError
	var fz *starter.FrozenError
	var refused *starter.RefusedError
	var outside *starter.OutsideWindowError
	var bad *starter.BadInputError
	switch {
	case errors.As(err, &probs), errors.As(err, &bad):
		return exitBadInput
	case errors.As(err, &ar), errors.As(err, &fz), errors.As(err, &refused), errors.As(err, &outside):
		return exitConflict
	}
	if isUsage(err) {
		return exitBadInput
	}
	return exitError
}

func isUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown command", "accepts ", "requires at least", "invalid argument", "flag needs an argument", "unknown shorthand"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// tokenSubject reads the "sub" of a JWT, "" when the key is not one. The
// server verifies the token; this only names its holder the same way.
func tokenSubject(key string) string {
	parts := strings.Split(key, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Sub
}
