// Package kube connects to a Kubernetes API server for the kubernetes
// platform and the gateway-api and kubernetes-service routers, and turns its
// errors into ones that say what to do.
package kube

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/switchyard/switchyard/internal/spec"
)

// Clients are the typed clients of one API server.
type Clients struct {
	Core    kubernetes.Interface
	Gateway gatewayclient.Interface
	Host    string
}

// One set of clients per kubeconfig and context per process.
var cache struct {
	sync.Mutex
	byKey map[string]*Clients
}

// ErrNoConfig says where a kubeconfig was looked for.
var ErrNoConfig = errors.New("kubernetes: no kubeconfig (kubernetes.kubeconfig, $KUBECONFIG or ~/.kube/config) and not running in a cluster")

// For returns the clients for a spec's kubernetes section.
func For(s *spec.Service) (*Clients, error) {
	path := s.Kubernetes.Kubeconfig
	if path != "" && !filepath.IsAbs(path) {
		path = filepath.Join(s.Dir, path)
	}
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path == "" {
		if home, err := os.UserHomeDir(); err == nil {
			if _, err := os.Stat(filepath.Join(home, ".kube", "config")); err == nil {
				path = filepath.Join(home, ".kube", "config")
			}
		}
	}
	key := path + "\x00" + s.Kubernetes.Context
	cache.Lock()
	defer cache.Unlock()
	if c, ok := cache.byKey[key]; ok {
		return c, nil
	}
	var cfg *rest.Config
	var err error
	if path != "" {
		if _, statErr := os.Stat(path); statErr != nil {
			return nil, fmt.Errorf("kubernetes: kubeconfig %s: %w", path, statErr)
		}
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: path},
			&clientcmd.ConfigOverrides{CurrentContext: s.Kubernetes.Context}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: kubeconfig %s: %w", path, err)
		}
	} else if cfg, err = rest.InClusterConfig(); err != nil {
		return nil, ErrNoConfig
	}
	cfg.UserAgent = "switchyard"
	// client-go's default of 5 requests/s (burst 10) is shared by every
	// rollout this worker runs: an immediate rollback waited ~2 s behind it
	cfg.QPS, cfg.Burst = 50, 100
	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client for %s: %w", cfg.Host, err)
	}
	gw, err := gatewayclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: Gateway API client for %s: %w", cfg.Host, err)
	}
	c := &Clients{Core: core, Gateway: gw, Host: cfg.Host}
	if cache.byKey == nil {
		cache.byKey = map[string]*Clients{}
	}
	cache.byKey[key] = c
	return c, nil
}

// PermanentError marks an error no retry can fix: forbidden, a missing
// namespace or kind, an invalid object.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent: no retry helps (rollout.IsPermanent).
func (e *PermanentError) Permanent() bool { return true }

// Error is Explain's message, marked permanent where it is.
func (c *Clients) Error(what string, err error) error {
	msg, bad := c.Explain(what, err)
	if bad {
		return &PermanentError{msg}
	}
	return msg
}

// Explain says what a failed call means and what to do about it; bad is
// true when no retry can fix it (forbidden, missing namespace or kind).
func (c *Clients) Explain(what string, err error) (msg error, bad bool) {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("kubernetes: %s: forbidden: %s (give the worker's account the Role in deployments/kubernetes/rbac.yaml in that namespace; check kubernetes.namespace names one that exists)", what, apiMessage(err)), true
	case apierrors.IsNotFound(err) && strings.Contains(err.Error(), "namespaces"):
		return fmt.Errorf("kubernetes: %s: %s (create it: kubectl create namespace, or fix kubernetes.namespace)", what, apiMessage(err)), true
	case apierrors.IsNotFound(err) && strings.Contains(err.Error(), "the server could not find the requested resource"):
		return fmt.Errorf("kubernetes: %s: the API server at %s does not serve this kind (are the Gateway API CRDs installed? kubectl apply -f the standard channel's CRDs)", what, c.Host), true
	case apierrors.IsInvalid(err):
		return fmt.Errorf("kubernetes: %s: %s", what, apiMessage(err)), true
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("kubernetes: %s: the API server at %s refused the credentials (check the kubeconfig's user)", what, c.Host), true
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return fmt.Errorf("kubernetes: %s: cannot reach the API server at %s: %w", what, c.Host, err), false
	}
	return fmt.Errorf("kubernetes: %s: %w", what, err), false
}

func apiMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Message
	}
	return err.Error()
}
