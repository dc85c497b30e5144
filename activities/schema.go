package activities

import (
	"context"
	"fmt"
	"os"

	"github.com/switchyard/switchyard/internal/schema"
)

// SchemaInput asks for one phase of the service's migrations.
type SchemaInput struct {
	Phase string `json:"phase"` // expand or contract
	// Version ships (expand) or owns the contract (contract).
	Version string `json:"version"`
	// Live is the version serving now: a contract never runs under an older one.
	Live string `json:"live,omitempty"`
	// Force goes back to a version a contract broke, without a down migration.
	Force bool `json:"force,omitempty"`
}

// Schema runs a phase of the migrations on the database named by the
// worker's variable (the URL never leaves the worker), under the service's
// advisory lock; the steps that ran come back for the history.
func (a *Activities) Schema(ctx context.Context, in SchemaInput) ([]schema.Step, error) {
	defer keepAlive(ctx)()
	s, err := a.spec(ctx, nil)
	if err != nil {
		return nil, err
	}
	m := s.Migrations
	if m == nil {
		return nil, badInput(fmt.Errorf("%s has no migrations", s.Name))
	}
	url := os.Getenv(m.DatabaseEnv)
	if url == "" {
		return nil, badInput(fmt.Errorf("migrations.databaseEnv: the worker has no variable %s (the database URL)", m.DatabaseEnv))
	}
	r, err := schema.Open(ctx, s, url, commandEnv(s))
	if err != nil {
		return nil, classify(err)
	}
	defer r.Close()
	switch in.Phase {
	case "expand":
		steps, err := r.Expand(ctx, in.Version, in.Force)
		return steps, classify(err)
	case "contract":
		st, err := r.Contract(ctx, in.Version, in.Live)
		if schema.NoContract(err) {
			return nil, nil
		}
		if err != nil {
			return nil, classify(err)
		}
		return []schema.Step{st}, nil
	}
	return nil, badInput(fmt.Errorf("schema phase %q: expand or contract", in.Phase))
}
