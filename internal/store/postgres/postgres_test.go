package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/store/migrate"
	"github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
	"github.com/yolda/yolda/internal/store/storetest"
)

func open(t testing.TB, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), pgtest.URL(t), opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return open(t) })
}

func TestFleetConformance(t *testing.T) {
	storetest.RunFleet(t, func(t *testing.T) storetest.FleetStore { return open(t) })
}

func TestDispatchConformance(t *testing.T) {
	storetest.RunDispatch(t, func(t *testing.T) storetest.DispatchStore { return open(t) })
}

func TestWithSchemaOption(t *testing.T) {
	_, schema := pgtest.Schema(t)
	s, err := postgres.Open(context.Background(), pgtest.BaseURL(t), postgres.WithSchema(schema))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	var n int
	if err := s.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'requests'`, schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("requests table not created in schema %s", schema)
	}
}

// schemaOf describes everything the migrations made in the store's
// schema: every column, index and constraint, and the migrations recorded.
func schemaOf(t *testing.T, s *postgres.Store) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, q := range []string{
		`SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
			FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`,
		`SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname`,
		`SELECT conname || ': ' || pg_get_constraintdef(oid) FROM pg_constraint
			WHERE connamespace = current_schema()::regnamespace ORDER BY conname`,
		`SELECT 'migrations: ' || count(*) || ' up to ' || max(version) FROM schema_migrations`,
	} {
		rows, err := s.Pool().Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(strings.Join(lines, "\n") + "\n")
	}
	return b.String()
}

// Migrating an up-to-date schema changes nothing: not a column, not an
// index, not the record of what was applied.
func TestMigrateIsIdempotent(t *testing.T) {
	u := pgtest.URL(t)
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	before := schemaOf(t, s)
	s.Close()
	if !strings.Contains(before, "outbox_batches.acks") || !strings.Contains(before, migrationsLine(t)) {
		t.Fatalf("schema after the first migration:\n%s", before)
	}
	for range 2 {
		s, err := postgres.Open(context.Background(), u)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatalf("Migrate again: %v", err)
		}
		after := schemaOf(t, s)
		s.Close()
		if after != before {
			t.Errorf("migrating again changed the schema:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	}
}

// A database migrated by a newer build is refused, with a reason.
func TestMigrateRefusesANewerSchema(t *testing.T) {
	u := pgtest.URL(t)
	first, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Pool().Exec(context.Background(),
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, '0099_future.sql', now())`); err != nil {
		t.Fatal(err)
	}
	first.Close()
	if _, err := postgres.Open(context.Background(), u); !errors.Is(err, migrate.ErrSchemaNewer) || !strings.Contains(err.Error(), "99") {
		t.Errorf("Open on a newer schema: %v, want migrate.ErrSchemaNewer naming version 99", err)
	}
}

// Processes that start at once on an empty schema must all succeed and
// apply each migration once.
func TestConcurrentOpen(t *testing.T) {
	u := pgtest.URL(t)
	const n = 4
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = postgres.Open(context.Background(), u)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open #%d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var applied, distinct int
	if err := stores[0].Pool().QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied != distinct || applied == 0 {
		t.Errorf("schema_migrations has %d rows for %d versions", applied, distinct)
	}
}

// The insurer's coverage document comes back byte for byte, whatever its
// spacing and key order (jsonb would rewrite both).
func TestCoverageKeptVerbatim(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	owner := addUser(t, s, "ayse")
	r := request(owner.ID, time.Now())
	r.Insurance.Coverage = json.RawMessage(`{"services": ["tow"],  "max_tow_km":100}`)
	if err := s.CreateRequests(ctx, []*intake.Creation{{Request: r}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Request(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Insurance.Coverage) != string(r.Insurance.Coverage) {
		t.Errorf("coverage = %s, want %s", got.Insurance.Coverage, r.Insurance.Coverage)
	}
}

// Many concurrent batches sharing keys, in different orders, must neither
// deadlock nor store a key twice.
func TestConcurrentBatchesSharingKeys(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	owner := addUser(t, s, "ayse")
	const writers, perBatch, keys = 8, 20, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var batch []*intake.Creation
			for i := range perBatch {
				k := (i + w*3) % keys
				if w%2 == 1 {
					k = keys - 1 - k
				}
				batch = append(batch, &intake.Creation{Request: request(owner.ID, time.Now()),
					IdempotencyKey: fmt.Sprintf("k%d", k), Fingerprint: "fp"})
			}
			errs <- s.CreateRequests(ctx, batch)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("CreateRequests: %v", err)
		}
	}
	all, err := s.Requests(ctx, intake.Filter{OwnerID: owner.ID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != keys {
		t.Errorf("stored %d requests for %d keys", len(all), keys)
	}
}

func addUser(t testing.TB, s *postgres.Store, name string) account.User {
	t.Helper()
	u := account.User{ID: id.New("usr", time.Now()), Username: name, Role: identity.Customer,
		PasswordHash: "x", CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u
}

// request is a realistic request as intake builds it.
func request(owner string, at time.Time) intake.Request {
	at = at.UTC().Truncate(time.Microsecond)
	return intake.Request{
		ID: id.New("req", at), OwnerID: owner, Status: intake.StatusReceived, ServiceType: intake.Tow,
		Location:    intake.Location{Lat: 41.0082, Lng: 28.9784, Address: "Fatih, İstanbul", Province: "İstanbul", District: "Fatih"},
		Destination: &intake.Location{Lat: 41.05, Lng: 29.01, Address: "Servis, Şişli"},
		Vehicle:     intake.Vehicle{Plate: "34ABC123", Make: "Fiat", Model: "Egea", Type: "car"},
		Policy:      intake.Policy{Insurer: "anadolu", PolicyNumber: "POL-123456"},
		Contact:     intake.Contact{Name: "Ayşe Yılmaz", Phone: "+905551112233"},
		Notes:       "Left lane, hazard lights on",
		Insurance:   intake.Insurance{Status: intake.InsurancePending},
		Timeline:    []intake.TimelineEntry{{Status: intake.StatusReceived, At: at, ActorID: owner}},
		CreatedAt:   at, UpdatedAt: at, Version: 1,
	}
}

func creation(r intake.Request, key string) *intake.Creation {
	actor := outbox.Actor{ID: r.OwnerID, Role: identity.Customer}
	verify, _ := outbox.New(outbox.SubjectInsuranceVerify, "insurance.verify", r.CreatedAt, r.ID, actor, r)
	job, _ := outbox.New(outbox.SubjectDispatchRequest, "dispatch.request", r.CreatedAt, r.ID, actor, map[string]string{"id": r.ID})
	ev, _ := outbox.New(outbox.EventSubject(outbox.EventRequestCreated), outbox.EventRequestCreated, r.CreatedAt, r.ID, actor, map[string]string{"id": r.ID, "status": string(r.Status)})
	c := &intake.Creation{Request: r, Outbox: []outbox.Message{verify, job, ev}}
	if key != "" {
		c.IdempotencyKey, c.Fingerprint = key, "fp-"+key
	}
	return c
}

// BenchmarkCreateRequests measures the store alone: batches of b.N-spread
// creations from several writers, as intake's group commit sends them.
// Report: requests/s.
func BenchmarkCreateRequests(b *testing.B) {
	for _, bc := range []struct {
		batch, writers int
		keys           bool
	}{{1, 16, false}, {16, 4, false}, {128, 2, false}, {128, 4, false}, {128, 4, true}} {
		b.Run(fmt.Sprintf("batch=%d/writers=%d/keys=%v", bc.batch, bc.writers, bc.keys), func(b *testing.B) {
			s := open(b, postgres.WithMaxConns(bc.writers))
			ctx := context.Background()
			var owners []string
			for i := range 64 {
				owners = append(owners, addUser(b, s, fmt.Sprintf("owner%d", i)).ID)
			}
			// Warm the statement caches.
			if err := s.CreateRequests(ctx, []*intake.Creation{creation(request(owners[0], time.Now()), "warm")}); err != nil {
				b.Fatal(err)
			}
			batches := (b.N + bc.batch - 1) / bc.batch
			work := make(chan int, batches)
			for i := range batches {
				work <- i
			}
			close(work)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range bc.writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range work {
						cs := make([]*intake.Creation, bc.batch)
						for j := range cs {
							key := ""
							if bc.keys {
								key = fmt.Sprintf("key-%d-%d", i, j)
							}
							cs[j] = creation(request(owners[(i*bc.batch+j)%len(owners)], time.Now()), key)
						}
						if err := s.CreateRequests(ctx, cs); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(batches*bc.batch)/time.Since(start).Seconds(), "requests/s")
		})
	}
}

func TestAccountConformance(t *testing.T) {
	storetest.RunAccounts(t, func(t *testing.T) storetest.AccountStore { return open(t) })
}

// migrationsLine is what schema says when every migration of this build
// has been applied once: as many as the migrations directory holds.
func migrationsLine(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v (%d files)", err, len(files))
	}
	return fmt.Sprintf("migrations: %d up to %d", len(files), len(files))
}

// BenchmarkDecisions: the store's side of a dispatch pass (see
// storetest.BenchDecisions).
//
//	YOLDA_TEST_POSTGRES_URL=... go test -run '^$' -bench Decisions -benchmem ./internal/store/postgres/
func BenchmarkDecisions(b *testing.B) {
	storetest.BenchDecisions(b, open(b))
}
