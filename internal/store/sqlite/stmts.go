package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// SQLite parses a statement's text every time it is run unprepared, and
// the driver keeps nothing between calls: parsing the writer's statements
// (the 37-column UPDATE of a request above all) was a fifth of its time
// under load. So every statement of fixed text is prepared once per
// connection and kept; a pool's connections live as long as the pool.

// maxCachedStmts bounds the statements kept per pool: texts built from
// filters come in a bounded number of shapes, and those beyond are run
// unprepared.
const maxCachedStmts = 256

// stmtCache is a pool's prepared statements by their text.
type stmtCache struct {
	db     *sql.DB
	mu     sync.RWMutex
	m      map[string]*sql.Stmt
	closed bool
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}}
}

// get returns the statement for q, or nil if it is not prepared yet.
func (c *stmtCache) get(q string) *sql.Stmt {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[q]
}

// prepare prepares q on the pool and keeps it, unless it is kept already
// or the cache is full. It takes a connection of the pool: the caller
// must hold none (with one writer connection, a transaction's miss is
// prepared after the transaction, see txn).
func (c *stmtCache) prepare(ctx context.Context, q string) *sql.Stmt {
	if st := c.get(q); st != nil {
		return st
	}
	c.mu.RLock()
	full := c.closed || len(c.m) >= maxCachedStmts
	c.mu.RUnlock()
	if full {
		return nil
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil // run unprepared: the statement reports its own error
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[q]; ok || c.closed {
		st.Close()
		return prev
	}
	c.m[q] = st
	return st
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}

// pool is a connection pool whose statements outside transactions are
// prepared once.
type pool struct {
	*sql.DB
	stmts *stmtCache
}

func newPool(db *sql.DB) *pool { return &pool{DB: db, stmts: newStmtCache(db)} }

// Close closes the kept statements, then the pool.
func (p *pool) Close() error { return errors.Join(p.stmts.close(), p.DB.Close()) }

// QueryContext is sql.DB's, prepared once.
func (p *pool) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := p.stmts.prepare(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.DB.QueryContext(ctx, q, args...)
}

// QueryRowContext is sql.DB's, prepared once.
func (p *pool) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := p.stmts.prepare(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return p.DB.QueryRowContext(ctx, q, args...)
}

// txn is a transaction whose statements run prepared when the pool has
// them. A statement it does not have runs unprepared and is prepared once
// the transaction has ended (its connection is then free).
type txn struct {
	*sql.Tx
	// override, when set, is the context of every statement, whatever
	// context the caller gives (a member of a group commit: see group.go).
	override context.Context
	stmts    *stmtCache
	bound    map[string]*sql.Stmt // the kept statements, bound to the transaction
	missed   map[string]struct{}
}

// begin starts a transaction on p.
func (p *pool) begin(ctx context.Context, opts *sql.TxOptions) (*txn, error) {
	tx, err := p.DB.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &txn{Tx: tx, stmts: p.stmts}, nil
}

// ended prepares what the transaction missed. The connection must be free.
func (t *txn) ended(ctx context.Context) {
	for q := range t.missed {
		if ctx.Err() != nil {
			return
		}
		t.stmts.prepare(ctx, q)
	}
	t.missed = nil
}

func (t *txn) ctx(ctx context.Context) context.Context {
	if t.override != nil {
		return t.override
	}
	return ctx
}

func (t *txn) stmt(ctx context.Context, q string) *sql.Stmt {
	if st, ok := t.bound[q]; ok {
		return st
	}
	if st := t.stmts.get(q); st != nil {
		st = t.Tx.StmtContext(ctx, st)
		if t.bound == nil {
			t.bound = map[string]*sql.Stmt{}
		}
		t.bound[q] = st
		return st
	}
	if t.missed == nil {
		t.missed = map[string]struct{}{}
	}
	t.missed[q] = struct{}{}
	return nil
}

// ExecContext is sql.Tx's, prepared once.
func (t *txn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	ctx = t.ctx(ctx)
	if st := t.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, q, args...)
}

// QueryContext is sql.Tx's, prepared once.
func (t *txn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	ctx = t.ctx(ctx)
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, q, args...)
}

// QueryRowContext is sql.Tx's, prepared once.
func (t *txn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	ctx = t.ctx(ctx)
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, q, args...)
}
