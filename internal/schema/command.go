package schema

import (
	"context"
	"database/sql"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/switchyard/switchyard/internal/spec"
)

// command runs the spec's own commands for each phase (a migrate CLI, a
// script), with DATABASE_URL, VERSION and SCHEMA_PHASE set. Switchyard
// cannot see inside them: each must be idempotent (a worker lost mid-run
// runs it again), and a contract is undone as a whole by the down command.
type command struct {
	m        *spec.Migrations
	dir      string
	environ  []string
	url      string
	db       *sql.DB
	svc, env string
}

func (c *command) run(ctx context.Context, argv []string, phase, version string) error {
	if len(argv) == 0 {
		return fmt.Errorf("no %s command", phase)
	}
	name := argv[0]
	if strings.Contains(name, "/") && !filepath.IsAbs(name) {
		name = filepath.Join(c.dir, name)
	}
	cmd := exec.CommandContext(ctx, name, argv[1:]...)
	cmd.Dir = c.dir
	cmd.Env = append(append([]string{}, c.environ...), "DATABASE_URL="+c.url, "VERSION="+version, "SCHEMA_PHASE="+phase)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := strings.TrimSpace(string(out))
		if len(tail) > 400 {
			tail = "…" + tail[len(tail)-400:]
		}
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.ReplaceAll(tail, c.url, "<database URL>"))
	}
	return nil
}

func (c *command) up(ctx context.Context, phase string, since, _ int64, version string) (int64, []string, error) {
	argv := c.m.Command.Expand
	if phase == "contract" {
		argv = c.m.Command.Contract
	}
	if err := c.run(ctx, argv, phase, version); err != nil {
		return 0, nil, err
	}
	return since + 1, []string{phase + " command (" + filepath.Base(argv[0]) + ")"}, nil
}

func (c *command) maxLevel(string) (int64, error) { return 0, nil }

func (c *command) canDown(int64) ([]string, error) {
	if len(c.m.Command.Down) == 0 {
		return []string{"migrations.command.down is not set"}, nil
	}
	return nil, nil
}

func (c *command) down(ctx context.Context, _ int64, version string) ([]string, error) {
	if err := c.run(ctx, c.m.Command.Down, "down", version); err != nil {
		return nil, err
	}
	return []string{"down command (" + filepath.Base(c.m.Command.Down[0]) + ")"}, nil
}

var _ tool = (*command)(nil)
