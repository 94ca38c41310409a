package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/intake"
)

// This file is batch creation: intake's group commit hands CreateRequests
// a batch of new requests, which is written in one statement.

// insertRequestsSQL is the whole of a creation batch but the read of the
// idempotency keys, in one statement:
//   - claimed: the batch's idempotency keys, one row per distinct
//     (owner, key), inserted in key order (so concurrent batches lock them
//     in the same order and cannot deadlock); a key already taken, even by
//     a transaction still in flight, which is then waited for, is skipped;
//   - ins: the requests without a key or whose key was just claimed;
//   - the timeline entries and outbox rows of the requests in ins, outbox
//     rows in the batch's order so that seq follows it.
//
// The parameters are creationArrays.args: the request columns
// (requestArrays.requestArgs), their idempotency keys (NULL for none), the
// claims, the timeline rows and the outbox rows, all as arrays.
var insertRequestsSQL = func() string {
	n := len(requestColumns)
	param := func(typ string) string {
		n++
		return "$" + strconv.Itoa(n) + "::" + typ + "[]"
	}
	idemKey := param("text")
	claim := []string{param("text"), param("text"), param("text"), param("text"), param("timestamptz")}
	timeline := []string{param("text"), param("int4"), param("text"), param("timestamptz"), param("text"), param("text"), param("int4")}
	ob := []string{param("text"), param("text"), param("text"), param("bytea"), param("timestamptz")}

	return fmt.Sprintf(`WITH claimed AS (
	INSERT INTO idempotency_keys (owner_id, key, fingerprint, request_id, created_at)
	SELECT * FROM unnest(%s) ORDER BY 1, 2
	ON CONFLICT DO NOTHING
	RETURNING request_id
), ins AS (
	INSERT INTO requests (%s)
	SELECT %s
	FROM unnest(%s, %s) AS u(%s, idem_key)
	WHERE u.idem_key IS NULL OR u.id IN (SELECT request_id FROM claimed)
	RETURNING id
), tl AS (
	INSERT INTO request_timeline (request_id, seq, status, at, actor_id, reason, version)
	SELECT * FROM unnest(%s) AS t(request_id, seq, status, at, actor_id, reason, version)
	WHERE t.request_id IN (SELECT id FROM ins)
), ob AS (
	INSERT INTO outbox (id, subject, payload, created_at)
	SELECT o.id, o.subject, o.payload, o.created_at
	FROM unnest(%s) WITH ORDINALITY AS o(request_id, id, subject, payload, created_at, ord)
	WHERE o.request_id IN (SELECT id FROM ins)
	ORDER BY o.ord
)
SELECT id FROM ins`,
		strings.Join(claim, ", "),
		strings.Join(requestColumns, ", "),
		unnestedRequestColumns,
		requestParams(1), idemKey, strings.Join(requestColumns, ", "),
		strings.Join(timeline, ", "),
		strings.Join(ob, ", "))
}()

// readKeysSQL reads the stored claims of the batch's keys. It runs after
// insertRequestsSQL in the same transaction, with a newer snapshot, so it
// sees both this batch's claims and those that other transactions
// committed while this one waited for them.
const readKeysSQL = `SELECT k.owner_id, k.key, k.fingerprint, k.request_id
	FROM idempotency_keys k
	JOIN unnest($1::text[], $2::text[]) AS b(owner_id, key) ON k.owner_id = b.owner_id AND k.key = b.key`

type ownerKey struct{ owner, key string }

// creationArrays is a creation batch column by column: its requests with
// their timelines and outbox rows, and the idempotency keys they claim.
type creationArrays struct {
	requestArrays
	idemKey                                       []*string
	claimOwner, claimKey, claimFP, claimRequestID []string
	claimAt                                       []time.Time
}

func (a *creationArrays) add(c *intake.Creation, claim bool) {
	r := &c.Request
	a.addRequest(r)
	for i := range r.Timeline {
		r.Timeline[i].Version = r.Version
		a.addTimeline(r.ID, i+1, r.Version, r.Timeline[i])
	}
	a.addOutbox(r.ID, c.Outbox)
	if !claim {
		a.idemKey = append(a.idemKey, nil)
		return
	}
	a.idemKey = append(a.idemKey, &c.IdempotencyKey)
	a.claimOwner = append(a.claimOwner, r.OwnerID)
	a.claimKey = append(a.claimKey, c.IdempotencyKey)
	a.claimFP = append(a.claimFP, c.Fingerprint)
	a.claimRequestID = append(a.claimRequestID, r.ID)
	a.claimAt = append(a.claimAt, r.CreatedAt)
}

// args are insertRequestsSQL's parameters.
func (a *creationArrays) args() []any {
	return append(a.requestArgs(),
		a.idemKey,
		a.claimOwner, a.claimKey, a.claimFP, a.claimRequestID, a.claimAt,
		a.tlRequest, a.tlSeq, a.tlStatus, a.tlAt, a.tlActor, a.tlReason, a.tlVersion,
		a.obRequest, a.obID, a.obSubject, a.obPayload, a.obAt,
	)
}

// CreateRequests implements intake.Store: the whole batch in one implicit
// transaction, sent as one pipeline (one round trip once the statements are
// prepared on the connection). Idempotency is decided by the primary key of
// idempotency_keys; see insertRequestsSQL.
func (s *Store) CreateRequests(ctx context.Context, batch []*intake.Creation) error {
	if len(batch) == 0 {
		return nil
	}
	var a creationArrays
	var keys []ownerKey // distinct, in batch order
	first := make(map[ownerKey]bool)
	for _, c := range batch {
		c.ReplayOf, c.Err = "", nil
		claim := false
		if c.IdempotencyKey != "" {
			k := ownerKey{c.Request.OwnerID, c.IdempotencyKey}
			if first[k] {
				// A later creation with a key seen earlier in the batch is
				// never inserted: it is a replay of (or a mismatch with)
				// whatever holds the key after the first one.
				continue
			}
			first[k] = true
			keys = append(keys, k)
			claim = true
		}
		a.add(c, claim)
	}

	b := &pgx.Batch{}
	b.Queue(insertRequestsSQL, a.args()...)
	if len(keys) > 0 {
		owners, ks := make([]string, len(keys)), make([]string, len(keys))
		for i, k := range keys {
			owners[i], ks[i] = k.owner, k.key
		}
		b.Queue(readKeysSQL, owners, ks)
	}
	br := s.pool.SendBatch(ctx, b)
	inserted, err := collectStrings(br)
	if err != nil {
		br.Close()
		return fmt.Errorf("insert requests: %w", rowError(err))
	}
	type claim struct{ fingerprint, requestID string }
	claims := make(map[ownerKey]claim, len(keys))
	if len(keys) > 0 {
		rows, err := br.Query()
		if err == nil {
			for rows.Next() {
				var k ownerKey
				var c claim
				if err = rows.Scan(&k.owner, &k.key, &c.fingerprint, &c.requestID); err != nil {
					break
				}
				claims[k] = c
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
		if err != nil {
			br.Close()
			return fmt.Errorf("read idempotency keys: %w", err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("create requests: %w", rowError(err))
	}
	if len(inserted) > 0 && len(a.obID) > 0 {
		s.outboxCommitted()
	}

	// The transaction has committed; report on every creation not inserted.
	slices.Sort(inserted)
	for _, c := range batch {
		if c.IdempotencyKey == "" {
			continue
		}
		if _, ok := slices.BinarySearch(inserted, c.Request.ID); ok {
			continue
		}
		cl, ok := claims[ownerKey{c.Request.OwnerID, c.IdempotencyKey}]
		if !ok {
			// Unreachable: a key that was not claimed is held by a
			// committed row. Fail loudly rather than invent an answer.
			c.Err = fmt.Errorf("idempotency key %q: claim neither made nor found", c.IdempotencyKey)
			continue
		}
		if cl.fingerprint != c.Fingerprint {
			c.Err = intake.ErrIdempotencyMismatch
		} else {
			c.ReplayOf = cl.requestID
		}
	}
	return nil
}

func collectStrings(br pgx.BatchResults) ([]string, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
