// Package platform runs a service's slots. One small interface, one file per
// platform, picked by the spec's platform field.
package platform

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Instance is what runs in a slot.
type Instance struct {
	Slot    rollout.Slot `json:"slot"`
	Running bool         `json:"running"`
	Version string       `json:"version"`
	Addr    string       `json:"addr"` // host:port the slot serves on
	PID     int          `json:"pid,omitempty"`
	// Reattached is true when Provision found the version already running.
	Reattached bool `json:"reattached,omitempty"`
}

// Platform is what a rollout needs from the place slots run.
type Platform interface {
	// Provision makes the slot run the version and returns once it accepts
	// connections. A slot already running that version is kept, not restarted.
	Provision(ctx context.Context, slot rollout.Slot, version string, heartbeat func(string)) (Instance, error)
	// Inspect reports what runs in the slot now.
	Inspect(ctx context.Context, slot rollout.Slot) (Instance, error)
	// Retire stops the slot. Retiring a stopped slot is not an error.
	Retire(ctx context.Context, slot rollout.Slot) error
}

// New returns the platform the spec names.
func New(s *spec.Service) (Platform, error) {
	switch s.Platform {
	case "process":
		return NewProcess(s), nil
	}
	return nil, fmt.Errorf("platform: unknown platform %q (use process)", s.Platform)
}

// BadInputError marks an error that retrying cannot fix.
type BadInputError struct{ Err error }

func (e *BadInputError) Error() string { return e.Err.Error() }
func (e *BadInputError) Unwrap() error { return e.Err }
