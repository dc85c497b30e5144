package schema

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pressly/goose/v3"

	"github.com/switchyard/switchyard/internal/spec"
)

// gooseTool runs the SQL files of dir/expand and dir/contract with goose,
// each phase with its own version table.
type gooseTool struct {
	db      *sql.DB
	m       *spec.Migrations
	specDir string
	table   string
}

// provider is goose over one phase's directory; nil when it holds no
// migration yet (a service's first release may have no contract).
func (g *gooseTool) provider(phase string) (*goose.Provider, error) {
	p, err := goose.NewProvider(goose.DialectPostgres, g.db, os.DirFS(g.m.Path(g.specDir, phase)),
		goose.WithTableName(g.table+"_"+phase), goose.WithDisableGlobalRegistry(true))
	if errors.Is(err, goose.ErrNoMigrations) {
		return nil, nil
	}
	return p, err
}

func (g *gooseTool) up(ctx context.Context, phase string, since, upto int64, _ string) (int64, []string, error) {
	p, err := g.provider(phase)
	if err != nil || p == nil {
		return since, nil, err
	}
	if upto > 0 {
		_, err = p.UpTo(ctx, upto)
	} else {
		_, err = p.Up(ctx)
	}
	if err != nil {
		return 0, nil, err
	}
	level, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, nil, err
	}
	var applied []string
	for _, s := range p.ListSources() {
		if s.Version > since && s.Version <= level {
			applied = append(applied, filepath.Base(s.Path))
		}
	}
	return level, applied, nil
}

func (g *gooseTool) maxLevel(phase string) (int64, error) {
	p, err := g.provider(phase)
	if err != nil || p == nil {
		return 0, err
	}
	var top int64
	for _, s := range p.ListSources() {
		top = max(top, s.Version)
	}
	return top, nil
}

// above is the contract migrations applied above level, newest first.
func (g *gooseTool) above(ctx context.Context, level int64) (*goose.Provider, []*goose.Source, error) {
	p, err := g.provider("contract")
	if err != nil || p == nil {
		return nil, nil, err
	}
	cur, err := p.GetDBVersion(ctx)
	if err != nil {
		return nil, nil, err
	}
	var out []*goose.Source
	srcs := p.ListSources()
	for i := len(srcs) - 1; i >= 0; i-- {
		if s := srcs[i]; s.Version > level && s.Version <= cur {
			out = append(out, s)
		}
	}
	return p, out, nil
}

func (g *gooseTool) canDown(level int64) ([]string, error) {
	_, srcs, err := g.above(context.Background(), level)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, s := range srcs {
		path := filepath.Join(g.m.Path(g.specDir, "contract"), filepath.Base(s.Path))
		if !hasDown(path) {
			missing = append(missing, filepath.Base(s.Path)+" has no down migration")
		}
	}
	return missing, nil
}

func (g *gooseTool) down(ctx context.Context, level int64, _ string) ([]string, error) {
	p, _, err := g.above(ctx, level)
	if err != nil || p == nil {
		return nil, err
	}
	res, err := p.DownTo(ctx, level)
	var names []string
	for _, r := range res {
		names = append(names, filepath.Base(r.Source.Path))
	}
	return names, err
}

// hasDown says whether a goose SQL file has statements in its Down section
// (goose runs an empty one as a no-op and forgets the migration: that is
// no way back).
func hasDown(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(t, "-- +goose Down"):
			in = true
		case strings.HasPrefix(t, "-- +goose Up"):
			in = false
		case in && t != "" && !strings.HasPrefix(t, "--"):
			return true
		}
	}
	return false
}

var _ tool = (*gooseTool)(nil)

func init() { goose.SetLogger(goose.NopLogger()) }

// String names the tool for messages.
func (g *gooseTool) String() string { return fmt.Sprintf("goose (%s)", g.m.Dir) }
