// Package migrate reads the versioned SQL migrations that each store
// embeds. Applying them is the store's business: locking and transactions
// differ per engine, so each engine keeps that code visible.
package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migration is one numbered SQL file, applied once, in order.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Load reads every "NNNN_name.sql" file in dir of fsys, in version order.
// Gaps and duplicates are errors: a migration is never skipped.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", name)
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d", m.Name, i+1)
		}
	}
	return out, nil
}

// ErrSchemaNewer: the database was migrated by a newer build than this one.
// Running on it could write what the newer schema forbids, or miss what it
// needs; the binary refuses instead of doing nothing.
var ErrSchemaNewer = errors.New("the database schema is newer than this binary")

// Pending returns the migrations of all not yet applied to a schema at
// version current, or ErrSchemaNewer when current is past the last of all.
func Pending(all []Migration, current int) ([]Migration, error) {
	if current > len(all) {
		return nil, fmt.Errorf("%w: schema version %d, this binary knows up to %d; run a build at least as new as the one that migrated it",
			ErrSchemaNewer, current, len(all))
	}
	return all[current:], nil
}
