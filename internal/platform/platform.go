// Package platform runs a service's slots. One small interface, one file per
// platform, picked by the spec's platform field.
package platform

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Instance is what runs in a slot (a domain type: the workflows read it too).
type Instance = rollout.Instance

// Platform is what a rollout needs from the place slots run.
type Platform interface {
	// Build makes the version's artifact (after the spec's build command has
	// run) and returns its immutable name: an image digest on docker, "" where
	// the platform needs none.
	Build(ctx context.Context, version string, heartbeat func(string)) (artifact string, err error)
	// Gates checks the artifact before any slot runs it (size, user, ports):
	// the platform's built-in pre-deployment checks. A failed check is a
	// result, not an error.
	Gates(ctx context.Context, artifact string) ([]rollout.CheckResult, error)
	// Provision makes the slot run the version (its artifact, where it has
	// one) and returns once it accepts connections. A slot already running
	// that version is kept, not restarted.
	Provision(ctx context.Context, slot rollout.Slot, version, artifact string, heartbeat func(string)) (Instance, error)
	// Inspect reports what runs in the slot now.
	Inspect(ctx context.Context, slot rollout.Slot) (Instance, error)
	// Retire stops the slot. Retiring a stopped slot is not an error.
	Retire(ctx context.Context, slot rollout.Slot) error
	// Describe says in a few words what runs in a slot, for the events.
	Describe(in Instance) string
}

// New returns the platform the spec names.
func New(s *spec.Service) (Platform, error) {
	switch s.Platform {
	case spec.PlatformProcess:
		return NewProcess(s), nil
	case spec.PlatformDocker:
		return NewDocker(s)
	case spec.PlatformKubernetes:
		return NewKubernetes(s)
	case spec.PlatformECS:
		return NewECS(s)
	}
	return nil, fmt.Errorf("platform: unknown platform %q", s.Platform)
}

// BadInputError marks an error that retrying cannot fix.
type BadInputError struct{ Err error }

func (e *BadInputError) Error() string { return e.Err.Error() }
func (e *BadInputError) Unwrap() error { return e.Err }

// Permanent: no retry helps (rollout.IsPermanent).
func (e *BadInputError) Permanent() bool { return true }

// slotEnv is what every platform tells a slot: VERSION, SWITCHYARD_*, the
// spec's run.env, and run.secretEnv read from the worker's environment
// (named in errors, never shown).
func slotEnv(s *spec.Service, slot rollout.Slot, version string) ([]string, error) {
	env := []string{"VERSION=" + version, "SWITCHYARD_SLOT=" + string(slot),
		"SWITCHYARD_SERVICE=" + s.Name, "SWITCHYARD_ENVIRONMENT=" + s.Environment}
	for _, k := range slices.Sorted(maps.Keys(s.Run.Env)) {
		env = append(env, k+"="+strings.ReplaceAll(s.Run.Env[k], "{{version}}", version))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Run.SecretEnv)) {
		from := s.Run.SecretEnv[k]
		v, ok := os.LookupEnv(from)
		if !ok {
			return nil, &BadInputError{fmt.Errorf("%s: run.secretEnv.%s: the worker has no environment variable %s", s.Platform, k, from)}
		}
		env = append(env, k+"="+v)
	}
	return env, nil
}

// slotLocks serializes Provision per slot within a worker: a retry that
// starts while the attempt it replaces still runs (a heartbeat timeout
// under load) would otherwise race it between the port check and the
// start, and one of them take the other's process or container for a
// stranger's (make bench's scale run failed 2 of 400 rollouts on it).
var slotLocks sync.Map // key → *sync.Mutex

// provisioning locks key's slot and returns the unlock.
func provisioning(key string) (unlock func()) {
	mu, _ := slotLocks.LoadOrStore(key, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}
