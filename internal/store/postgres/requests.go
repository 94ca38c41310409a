package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// requestColumns is every column of requests in the order of requestArgs
// and scanRequest.
var requestColumns = []string{"id", "owner_id", "status", "service_type",
	"lat", "lng", "address", "province", "district",
	"dest_lat", "dest_lng", "dest_address", "dest_province", "dest_district",
	"vehicle_plate", "vehicle_make", "vehicle_model", "vehicle_type", "insurer", "policy_number",
	"contact_name", "contact_phone", "notes",
	"insurance_status", "insurance_checked_at", "insurance_reason", "insurance_coverage", "insurance_reference", "insurance_flags",
	"driver_id", "driver_name", "driver_plate", "assigned_at", "eta_seconds",
	"created_at", "updated_at", "version"}

// requestTypes is the SQL type of each column, for the arrays that
// CreateRequests unnests. Coverage travels as text and is cast to json, so
// the insurer's document is stored exactly as received.
var requestTypes = []string{"text", "text", "text", "text",
	"float8", "float8", "text", "text", "text",
	"float8", "float8", "text", "text", "text",
	"text", "text", "text", "text", "text", "text",
	"text", "text", "text",
	"text", "timestamptz", "text", "text", "text", "text",
	"text", "text", "text", "timestamptz", "int4",
	"timestamptz", "timestamptz", "int4"}

// selectRequestColumns reads the columns of r in requestColumns order.
var selectRequestColumns = func() string {
	cols := make([]string, len(requestColumns))
	for i, c := range requestColumns {
		cols[i] = "r." + c
		if c == "insurance_coverage" {
			cols[i] += "::text"
		}
	}
	return strings.Join(cols, ", ")
}()

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
// $1-$36 are the requests' columns, $37 their idempotency keys (NULL for
// none), $38-$42 the claims, $43-$48 the timeline rows and $49-$53 the
// outbox rows, all as arrays.
var insertRequestsSQL = func() string {
	var b strings.Builder
	n := 0
	param := func(typ string) string {
		n++
		return "$" + strconv.Itoa(n) + "::" + typ + "[]"
	}
	reqParams := make([]string, len(requestTypes))
	for i, t := range requestTypes {
		reqParams[i] = param(t)
	}
	reqParams = append(reqParams, param("text")) // idempotency key
	selectCols := make([]string, len(requestColumns))
	for i, c := range requestColumns {
		selectCols[i] = "r." + c
		if c == "insurance_coverage" {
			selectCols[i] += "::json"
		}
	}
	claim := []string{param("text"), param("text"), param("text"), param("text"), param("timestamptz")}
	timeline := []string{param("text"), param("int4"), param("text"), param("timestamptz"), param("text"), param("text")}
	ob := []string{param("text"), param("text"), param("text"), param("bytea"), param("timestamptz")}

	fmt.Fprintf(&b, `WITH claimed AS (
	INSERT INTO idempotency_keys (owner_id, key, fingerprint, request_id, created_at)
	SELECT * FROM unnest(%s) ORDER BY 1, 2
	ON CONFLICT DO NOTHING
	RETURNING request_id
), ins AS (
	INSERT INTO requests (%s)
	SELECT %s
	FROM unnest(%s) AS r(%s, idem_key)
	WHERE r.idem_key IS NULL OR r.id IN (SELECT request_id FROM claimed)
	RETURNING id
), tl AS (
	INSERT INTO request_timeline (request_id, seq, status, at, actor_id, reason)
	SELECT * FROM unnest(%s) AS t(request_id, seq, status, at, actor_id, reason)
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
		strings.Join(selectCols, ", "),
		strings.Join(reqParams, ", "), strings.Join(requestColumns, ", "),
		strings.Join(timeline, ", "),
		strings.Join(ob, ", "))
	return b.String()
}()

// readKeysSQL reads the stored claims of the batch's keys. It runs after
// insertRequestsSQL in the same transaction, with a newer snapshot, so it
// sees both this batch's claims and those that other transactions
// committed while this one waited for them.
const readKeysSQL = `SELECT k.owner_id, k.key, k.fingerprint, k.request_id
	FROM idempotency_keys k
	JOIN unnest($1::text[], $2::text[]) AS b(owner_id, key) ON k.owner_id = b.owner_id AND k.key = b.key`

type ownerKey struct{ owner, key string }

// requestArrays holds a batch column by column.
type requestArrays struct {
	id, owner, status, service                    []string
	lat, lng                                      []float64
	address, province, district                   []string
	dLat, dLng                                    []*float64
	dAddress, dProvince, dDistrict                []*string
	plate, make_, model, vtype, insurer, policy   []string
	contactName, contactPhone, notes              []string
	insStatus                                     []string
	checkedAt                                     []*time.Time
	reason, coverage, reference                   []*string
	flags                                         []string
	driverID, driverName, driverPlate             []*string
	assignedAt                                    []*time.Time
	eta                                           []*int32
	createdAt, updatedAt                          []time.Time
	version                                       []int32
	idemKey                                       []*string
	claimOwner, claimKey, claimFP, claimRequestID []string
	claimAt                                       []time.Time
	tlRequest                                     []string
	tlSeq                                         []int32
	tlStatus                                      []string
	tlAt                                          []time.Time
	tlActor, tlReason                             []string
	obRequest, obID, obSubject                    []string
	obPayload                                     [][]byte
	obAt                                          []time.Time
}

func (a *requestArrays) addRequest(r *intake.Request, key *string) {
	a.id = append(a.id, r.ID)
	a.owner = append(a.owner, r.OwnerID)
	a.status = append(a.status, string(r.Status))
	a.service = append(a.service, string(r.ServiceType))
	a.lat = append(a.lat, r.Location.Lat)
	a.lng = append(a.lng, r.Location.Lng)
	a.address = append(a.address, r.Location.Address)
	a.province = append(a.province, r.Location.Province)
	a.district = append(a.district, r.Location.District)
	if d := r.Destination; d != nil {
		a.dLat = append(a.dLat, &d.Lat)
		a.dLng = append(a.dLng, &d.Lng)
		a.dAddress = append(a.dAddress, &d.Address)
		a.dProvince = append(a.dProvince, &d.Province)
		a.dDistrict = append(a.dDistrict, &d.District)
	} else {
		a.dLat, a.dLng = append(a.dLat, nil), append(a.dLng, nil)
		a.dAddress, a.dProvince, a.dDistrict = append(a.dAddress, nil), append(a.dProvince, nil), append(a.dDistrict, nil)
	}
	a.plate = append(a.plate, r.Vehicle.Plate)
	a.make_ = append(a.make_, r.Vehicle.Make)
	a.model = append(a.model, r.Vehicle.Model)
	a.vtype = append(a.vtype, string(r.Vehicle.Type))
	a.insurer = append(a.insurer, r.Policy.Insurer)
	a.policy = append(a.policy, r.Policy.PolicyNumber)
	a.contactName = append(a.contactName, r.Contact.Name)
	a.contactPhone = append(a.contactPhone, r.Contact.Phone)
	a.notes = append(a.notes, r.Notes)
	a.insStatus = append(a.insStatus, string(r.Insurance.Status))
	a.checkedAt = append(a.checkedAt, r.Insurance.CheckedAt)
	a.reason = append(a.reason, r.Insurance.Reason)
	a.coverage = append(a.coverage, coverageArg(r.Insurance.Coverage))
	a.reference = append(a.reference, r.Insurance.Reference)
	a.flags = append(a.flags, flagsArg(r.Insurance.Flags))
	if as := r.Assignment; as != nil {
		eta := int32(as.ETASeconds)
		a.driverID = append(a.driverID, &as.DriverID)
		a.driverName = append(a.driverName, &as.DriverName)
		a.driverPlate = append(a.driverPlate, &as.VehiclePlate)
		a.assignedAt = append(a.assignedAt, &as.AssignedAt)
		a.eta = append(a.eta, &eta)
	} else {
		a.driverID, a.driverName, a.driverPlate = append(a.driverID, nil), append(a.driverName, nil), append(a.driverPlate, nil)
		a.assignedAt, a.eta = append(a.assignedAt, nil), append(a.eta, nil)
	}
	a.createdAt = append(a.createdAt, r.CreatedAt)
	a.updatedAt = append(a.updatedAt, r.UpdatedAt)
	a.version = append(a.version, int32(r.Version))
	a.idemKey = append(a.idemKey, key)
	for i, e := range r.Timeline {
		a.addTimeline(r.ID, i+1, e)
	}
}

func (a *requestArrays) addTimeline(requestID string, seq int, e intake.TimelineEntry) {
	a.tlRequest = append(a.tlRequest, requestID)
	a.tlSeq = append(a.tlSeq, int32(seq))
	a.tlStatus = append(a.tlStatus, string(e.Status))
	a.tlAt = append(a.tlAt, e.At)
	a.tlActor = append(a.tlActor, e.ActorID)
	a.tlReason = append(a.tlReason, e.Reason)
}

func (a *requestArrays) addOutbox(requestID string, msgs []outbox.Message) {
	for _, m := range msgs {
		a.obRequest = append(a.obRequest, requestID)
		a.obID = append(a.obID, m.ID)
		a.obSubject = append(a.obSubject, m.Subject)
		a.obPayload = append(a.obPayload, nonNil(m.Payload))
		a.obAt = append(a.obAt, m.CreatedAt)
	}
}

func (a *requestArrays) args() []any {
	return []any{
		a.id, a.owner, a.status, a.service,
		a.lat, a.lng, a.address, a.province, a.district,
		a.dLat, a.dLng, a.dAddress, a.dProvince, a.dDistrict,
		a.plate, a.make_, a.model, a.vtype, a.insurer, a.policy,
		a.contactName, a.contactPhone, a.notes,
		a.insStatus, a.checkedAt, a.reason, a.coverage, a.reference, a.flags,
		a.driverID, a.driverName, a.driverPlate, a.assignedAt, a.eta,
		a.createdAt, a.updatedAt, a.version,
		a.idemKey,
		a.claimOwner, a.claimKey, a.claimFP, a.claimRequestID, a.claimAt,
		a.tlRequest, a.tlSeq, a.tlStatus, a.tlAt, a.tlActor, a.tlReason,
		a.obRequest, a.obID, a.obSubject, a.obPayload, a.obAt,
	}
}

// flagsArg stores flags as a JSON array: text keeps the creation batch a
// set of one-dimensional arrays.
func flagsArg(flags []string) string {
	if len(flags) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(flags) // strings always encode
	return string(b)
}

// nonNil turns a nil payload into an empty one (payload is NOT NULL).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func coverageArg(c []byte) *string {
	if len(c) == 0 {
		return nil
	}
	s := string(c)
	return &s
}

// CreateRequests implements intake.Store: the whole batch in one implicit
// transaction, sent as one pipeline (one round trip once the statements are
// prepared on the connection). Idempotency is decided by the primary key of
// idempotency_keys; see insertRequestsSQL.
func (s *Store) CreateRequests(ctx context.Context, batch []*intake.Creation) error {
	if len(batch) == 0 {
		return nil
	}
	var a requestArrays
	var keys []ownerKey // distinct, in batch order
	first := make(map[ownerKey]bool)
	for _, c := range batch {
		c.ReplayOf, c.Err = "", nil
		r := &c.Request
		var key *string
		if c.IdempotencyKey != "" {
			k := ownerKey{r.OwnerID, c.IdempotencyKey}
			if first[k] {
				// A later creation with a key seen earlier in the batch is
				// never inserted: it is a replay of (or a mismatch with)
				// whatever holds the key after the first one.
				continue
			}
			first[k] = true
			keys = append(keys, k)
			key = &c.IdempotencyKey
			a.claimOwner = append(a.claimOwner, r.OwnerID)
			a.claimKey = append(a.claimKey, c.IdempotencyKey)
			a.claimFP = append(a.claimFP, c.Fingerprint)
			a.claimRequestID = append(a.claimRequestID, r.ID)
			a.claimAt = append(a.claimAt, r.CreatedAt)
		}
		a.addRequest(r, key)
		a.addOutbox(r.ID, c.Outbox)
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
		return fmt.Errorf("insert requests: %w", err)
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
		return fmt.Errorf("create requests: %w", err)
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

type rowScanner interface{ Scan(dest ...any) error }

// scanRequest scans the columns of selectRequestColumns followed by extra.
func scanRequest(row rowScanner, extra ...any) (intake.Request, error) {
	var (
		r                                 intake.Request
		status, service, vtype, insStatus string
		dLat, dLng                        *float64
		dAddr, dProv, dDist               *string
		checkedAt, assignedAt             *time.Time
		eta                               *int32
		coverage                          *string
		flags                             string
		driverID, driverName, driverPlate *string
		version                           int32
	)
	dest := []any{&r.ID, &r.OwnerID, &status, &service,
		&r.Location.Lat, &r.Location.Lng, &r.Location.Address, &r.Location.Province, &r.Location.District,
		&dLat, &dLng, &dAddr, &dProv, &dDist,
		&r.Vehicle.Plate, &r.Vehicle.Make, &r.Vehicle.Model, &vtype, &r.Policy.Insurer, &r.Policy.PolicyNumber,
		&r.Contact.Name, &r.Contact.Phone, &r.Notes,
		&insStatus, &checkedAt, &r.Insurance.Reason, &coverage, &r.Insurance.Reference, &flags,
		&driverID, &driverName, &driverPlate, &assignedAt, &eta,
		&r.CreatedAt, &r.UpdatedAt, &version}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return intake.Request{}, err
	}
	r.Status = intake.Status(status)
	r.ServiceType = intake.ServiceType(service)
	r.Vehicle.Type = intake.VehicleType(vtype)
	if dLat != nil {
		r.Destination = &intake.Location{Lat: *dLat, Lng: deref(dLng),
			Address: deref(dAddr), Province: deref(dProv), District: deref(dDist)}
	}
	r.Insurance.Status = intake.InsuranceStatus(insStatus)
	r.Insurance.CheckedAt = utcPtr(checkedAt)
	if coverage != nil {
		r.Insurance.Coverage = []byte(*coverage)
	}
	if err := json.Unmarshal([]byte(flags), &r.Insurance.Flags); err != nil {
		return intake.Request{}, fmt.Errorf("decode insurance flags: %w", err)
	}
	if driverID != nil {
		r.Assignment = &intake.Assignment{DriverID: *driverID, DriverName: deref(driverName),
			VehiclePlate: deref(driverPlate), ETASeconds: int(deref(eta))}
		if assignedAt != nil {
			r.Assignment.AssignedAt = assignedAt.UTC()
		}
	}
	r.CreatedAt, r.UpdatedAt = utc(r.CreatedAt), utc(r.UpdatedAt)
	r.Version = int(version)
	return r, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// timelineArrays receives a request's timeline aggregated into arrays.
type timelineArrays struct {
	status []string
	at     []time.Time
	actor  []string
	reason []string
}

func (t *timelineArrays) dest() []any { return []any{&t.status, &t.at, &t.actor, &t.reason} }

func (t *timelineArrays) fill(r *intake.Request) error {
	n := len(t.status)
	if len(t.at) != n || len(t.actor) != n || len(t.reason) != n {
		return fmt.Errorf("request %s: timeline arrays of different lengths", r.ID)
	}
	r.Timeline = nil
	for i := range n {
		r.Timeline = append(r.Timeline, intake.TimelineEntry{Status: intake.Status(t.status[i]),
			At: t.at[i].UTC(), ActorID: t.actor[i], Reason: t.reason[i]})
	}
	return nil
}

// selectWithTimeline reads requests with their timelines in one statement,
// so a request and its timeline come from one snapshot.
var selectWithTimeline = `SELECT ` + selectRequestColumns + `, t.status, t.at, t.actor_id, t.reason
	FROM requests r
	LEFT JOIN LATERAL (
		SELECT array_agg(status ORDER BY seq) AS status, array_agg(at ORDER BY seq) AS at,
			array_agg(actor_id ORDER BY seq) AS actor_id, array_agg(reason ORDER BY seq) AS reason
		FROM request_timeline WHERE request_id = r.id
	) t ON true`

// Request implements intake.Store.
func (s *Store) Request(ctx context.Context, id string) (intake.Request, error) {
	var tl timelineArrays
	r, err := scanRequest(s.pool.QueryRow(ctx, selectWithTimeline+` WHERE r.id = $1`, id), tl.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return intake.Request{}, intake.ErrNotFound
	}
	if err != nil {
		return intake.Request{}, fmt.Errorf("read request: %w", err)
	}
	if err := tl.fill(&r); err != nil {
		return intake.Request{}, err
	}
	return r, nil
}

// Requests implements intake.Store.
func (s *Store) Requests(ctx context.Context, f intake.Filter) ([]intake.Request, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.ID != "" {
		add("r.id = ?", f.ID)
	}
	if f.OwnerID != "" {
		add("r.owner_id = ?", f.OwnerID)
	}
	if f.DriverID != "" {
		add("r.driver_id = ?", f.DriverID)
	}
	if len(f.Statuses) > 0 {
		st := make([]string, len(f.Statuses))
		for i, v := range f.Statuses {
			st[i] = string(v)
		}
		add("r.status = ANY(?::text[])", st)
	}
	if f.Province != "" {
		add("r.province = ?", f.Province)
	}
	if f.Insurer != "" {
		add("r.insurer = ?", f.Insurer)
	}
	if f.ServiceType != "" {
		add("r.service_type = ?", string(f.ServiceType))
	}
	if !f.From.IsZero() {
		add("r.created_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("r.created_at < ?", f.To)
	}
	if f.Before != "" {
		add("r.id < ?", f.Before)
	}
	q := selectWithTimeline
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit)
	q += ` ORDER BY r.id DESC LIMIT $` + strconv.Itoa(len(args))

	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	defer rows.Close()
	var out []intake.Request
	for rows.Next() {
		var tl timelineArrays
		r, err := scanRequest(rows, tl.dest()...)
		if err != nil {
			return nil, fmt.Errorf("scan request: %w", err)
		}
		if err := tl.fill(&r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	return out, nil
}

// updateRequestSQL sets every column but id.
var updateRequestSQL = func() string {
	sets := make([]string, 0, len(requestColumns)-1)
	for i, c := range requestColumns[1:] {
		sets = append(sets, c+" = $"+strconv.Itoa(i+2))
	}
	return `UPDATE requests SET ` + strings.Join(sets, ", ") + ` WHERE id = $1`
}()

func requestArgs(r *intake.Request) []any {
	var a requestArrays
	a.addRequest(r, nil)
	all := a.args()[:len(requestColumns)]
	args := make([]any, len(all))
	for i, col := range all {
		// Each column array holds one element; pass it as a scalar.
		switch v := col.(type) {
		case []string:
			args[i] = v[0]
		case []float64:
			args[i] = v[0]
		case []*float64:
			args[i] = v[0]
		case []*string:
			args[i] = v[0]
		case []*time.Time:
			args[i] = v[0]
		case []*int32:
			args[i] = v[0]
		case []time.Time:
			args[i] = v[0]
		case []int32:
			args[i] = v[0]
		default:
			panic(fmt.Sprintf("requestArgs: unexpected column type %T", col))
		}
	}
	return args
}

const insertOutboxSQL = `INSERT INTO outbox (id, subject, payload, created_at)
	SELECT o.id, o.subject, o.payload, o.created_at
	FROM unnest($1::text[], $2::text[], $3::bytea[], $4::timestamptz[]) WITH ORDINALITY AS o(id, subject, payload, created_at, ord)
	ORDER BY o.ord`

// UpdateRequest implements intake.Store. SELECT ... FOR UPDATE serialises
// writers of one request, so fn runs once, on the latest committed state.
// Three round trips: begin, lock and read (one pipeline); the writes (one
// pipeline: the change's receipt, the row, its timeline entry and its
// outbox rows); commit. A receipt recorded before rolls the whole change
// back and returns outbox.ErrAlreadyProcessed.
func (s *Store) UpdateRequest(ctx context.Context, id string, fn func(*intake.Request) (intake.Change, error)) (intake.Request, error) {
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(`SELECT `+selectRequestColumns+` FROM requests r WHERE r.id = $1 FOR UPDATE`, id)
	// A separate statement, so its snapshot is taken after the lock is
	// held and it sees the timeline of whoever held it before.
	b.Queue(`SELECT array_agg(status ORDER BY seq), array_agg(at ORDER BY seq), array_agg(actor_id ORDER BY seq),
		array_agg(reason ORDER BY seq) FROM request_timeline WHERE request_id = $1`, id)
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	if _, err := br.Exec(); err != nil { // BEGIN
		br.Close()
		return intake.Request{}, fmt.Errorf("begin: %w", err)
	}
	r, err := scanRequest(br.QueryRow())
	if errors.Is(err, pgx.ErrNoRows) {
		br.Close()
		return intake.Request{}, intake.ErrNotFound
	}
	if err != nil {
		br.Close()
		return intake.Request{}, fmt.Errorf("read request: %w", err)
	}
	var tl timelineArrays
	if err := br.QueryRow().Scan(tl.dest()...); err != nil {
		br.Close()
		return intake.Request{}, fmt.Errorf("read timeline: %w", err)
	}
	if err := br.Close(); err != nil {
		return intake.Request{}, fmt.Errorf("read request: %w", err)
	}
	if err := tl.fill(&r); err != nil {
		return intake.Request{}, err
	}

	change, err := fn(&r)
	if err != nil {
		return intake.Request{}, err
	}
	r.Version++

	w := &pgx.Batch{}
	if rc := change.Receipt; rc != nil {
		w.Queue(insertReceiptSQL, rc.Consumer, rc.MessageID)
	}
	w.Queue(updateRequestSQL, requestArgs(&r)...)
	if e := change.Timeline; e != nil {
		w.Queue(`INSERT INTO request_timeline (request_id, seq, status, at, actor_id, reason) VALUES ($1, $2, $3, $4, $5, $6)`,
			r.ID, len(r.Timeline)+1, string(e.Status), e.At, e.ActorID, e.Reason)
		r.Timeline = append(r.Timeline, *e)
	}
	queueOutbox(w, change.Outbox)
	wr := tx.SendBatch(ctx, w)
	if change.Receipt != nil {
		tag, err := wr.Exec()
		if err != nil {
			wr.Close()
			return intake.Request{}, fmt.Errorf("record receipt: %w", err)
		}
		if tag.RowsAffected() == 0 {
			// The rest of the batch ran; the deferred rollback undoes it.
			wr.Close()
			return intake.Request{}, outbox.ErrAlreadyProcessed
		}
	}
	if err := wr.Close(); err != nil {
		return intake.Request{}, fmt.Errorf("update request %s: %w", r.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return intake.Request{}, fmt.Errorf("commit: %w", err)
	}
	if len(change.Outbox) > 0 {
		s.outboxCommitted()
	}
	return r, nil
}
