package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// cleanupTimeout bounds the work done after the caller's context may have
// ended: a rollback, or the marks that record what the broker confirmed.
// It must never wait for ever on a database that stopped answering, or
// shutdown would hang with it.
const cleanupTimeout = 5 * time.Second

// cleanupContext is ctx without its cancellation (the cleanup must run even
// when ctx ended) but with a deadline of its own.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// rollback ends tx if it is still open, within cleanupTimeout. Defer it
// after every begin: once tx has committed it does nothing.
func rollback(ctx context.Context, tx pgx.Tx) {
	if tx == nil {
		return
	}
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	_ = tx.Rollback(cctx)
}

// read is one query of beginRead and what to do with each of its rows.
type read struct {
	sql  string
	args []any
	// scan is called for every row; the rows are closed afterwards.
	scan func(pgx.CollectableRow) error
}

// beginRead begins a transaction and runs reads in it, in order, in the
// same round trip as the BEGIN (one pipeline). It is how every
// read-modify-write starts: the reads lock what the transaction is about
// to change (FOR UPDATE) and load it. Each read after the first takes its
// snapshot once the previous one has finished, so a read that follows a
// locking read sees what the lock holder before committed.
//
// On success the transaction is open and the caller owns it: defer
// rollback(ctx, tx) and commit. On error the transaction is already
// rolled back and tx is nil.
func (s *Store) beginRead(ctx context.Context, reads ...read) (pgx.Tx, error) {
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	for _, r := range reads {
		b.Queue(r.sql, r.args...)
	}
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	fail := func(what string, err error) (pgx.Tx, error) {
		br.Close()
		rollback(ctx, tx)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if _, err := br.Exec(); err != nil { // BEGIN
		return fail("begin", err)
	}
	for _, r := range reads {
		rows, err := br.Query()
		if err != nil {
			return fail("read", err)
		}
		for rows.Next() {
			if err = r.scan(rows); err != nil {
				break
			}
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err != nil {
			return fail("read", err)
		}
	}
	if err := br.Close(); err != nil {
		return fail("read", err)
	}
	return tx, nil
}
