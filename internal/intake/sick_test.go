package intake_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
	"github.com/yolda/yolda/internal/store/sqlite"
)

// Group commit against real engines whose database misbehaves.

type engineStore interface {
	intake.Store
	account.Store
}

var engines = map[string]func(t *testing.T) engineStore{
	"sqlite": func(t *testing.T) engineStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "y.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
	"postgres": func(t *testing.T) engineStore {
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

// sickStore wraps a real store. Its first CreateRequests waits at gate
// (so that the next callers share a batch); commitThenLose makes the
// batch of that call number commit and then report a lost connection, as
// a connection dropped during COMMIT does.
type sickStore struct {
	engineStore
	gate           chan struct{}
	entered        chan struct{}
	calls          atomic.Int64
	commitThenLose int64
}

func (s *sickStore) CreateRequests(ctx context.Context, batch []*intake.Creation) error {
	n := s.calls.Add(1)
	if n == 1 && s.gate != nil {
		s.entered <- struct{}{}
		<-s.gate
	}
	err := s.engineStore.CreateRequests(ctx, batch)
	if err == nil && n == s.commitThenLose {
		return errors.New("unexpected EOF: connection lost during COMMIT")
	}
	return err
}

func submission(i int) intake.Submission {
	lat, lng := 41.0, 29.0
	return intake.Submission{ServiceType: intake.Lockout, Location: &intake.LocationInput{Lat: &lat, Lng: &lng},
		Vehicle: &intake.Vehicle{Plate: "34AB12", Type: "car"}, Policy: &intake.Policy{Insurer: "anadolu", PolicyNumber: fmt.Sprintf("P-%d", i)},
		Contact: &intake.Contact{Name: "Ayşe", Phone: "+905551112233"}}
}

func addCustomer(t *testing.T, s account.Store, name string) identity.Principal {
	t.Helper()
	accounts, _ := account.NewService(s, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	u, err := accounts.Add(context.Background(), account.NewUser{Username: name, Password: name + "-password", Role: identity.Customer})
	if err != nil {
		t.Fatal(err)
	}
	return identity.Principal{UserID: u.ID, Role: u.Role}
}

type result struct {
	created intake.Created
	err     error
}

// createHeld holds the writer in a first creation, queues the others so
// that they share the next batch, then lets the writer go.
func createHeld(t *testing.T, svc *intake.Service, s *sickStore, first identity.Principal, others []identity.Principal, keys []string) []result {
	t.Helper()
	s.gate, s.entered = make(chan struct{}), make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := svc.Create(context.Background(), first, submission(0), ""); err != nil {
			t.Errorf("held creation: %v", err)
		}
	}()
	<-s.entered
	out := make([]result, len(others))
	for i, who := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := submission(i + 1)
			if keys[i] != "" {
				body = submission(100) // one body per key: a repeat, not a mismatch
			}
			c, err := svc.Create(context.Background(), who, body, keys[i])
			out[i] = result{c, err}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for intake.Queued(svc) < len(others) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d creations queued", intake.Queued(svc), len(others))
		}
		time.Sleep(time.Millisecond)
	}
	close(s.gate)
	wg.Wait()
	return out
}

func TestSickDatabase(t *testing.T) {
	for engine, open := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Run("a bad row does not sink its neighbours", func(t *testing.T) {
				inner := open(t)
				s := &sickStore{engineStore: inner}
				var commits atomic.Int64
				svc := intake.NewService(s, intake.Options{Committed: func() { commits.Add(1) },
					Batch: intake.BatchOptions{MaxBatch: 16, Writers: 1}})
				defer svc.Close()
				ayse := addCustomer(t, inner, "ayse")
				ghost := identity.Principal{UserID: "usr_ghost", Role: identity.Customer} // no such account: a foreign key refuses it
				res := createHeld(t, svc, s, ayse, []identity.Principal{ayse, ghost, ayse}, []string{"", "", ""})
				for i, r := range res {
					if bad := i == 1; bad != (r.err != nil) {
						t.Errorf("creation %d: %v", i, r.err)
					}
				}
				if !errors.Is(res[1].err, intake.ErrRowRejected) {
					t.Errorf("the bad row's error %v does not say the row was refused", res[1].err)
				}
				for _, i := range []int{0, 2} {
					if _, err := inner.Request(context.Background(), res[i].created.Request.ID); err != nil {
						t.Errorf("good neighbour %d not stored: %v", i, err)
					}
				}
				// The held one, the shared batch, then each of the three alone.
				if n := s.calls.Load(); n != 5 {
					t.Errorf("%d transactions, want 5", n)
				}
				if commits.Load() != 3 {
					t.Errorf("relay woken %d times, want 3 (the held commit and the 2 retried alone)", commits.Load())
				}
			})
			t.Run("a commit whose answer was lost answers with the stored request", func(t *testing.T) {
				inner := open(t)
				s := &sickStore{engineStore: inner, commitThenLose: 2}
				var commits atomic.Int64
				svc := intake.NewService(s, intake.Options{Committed: func() { commits.Add(1) },
					Batch: intake.BatchOptions{MaxBatch: 16, Writers: 1}})
				defer svc.Close()
				ayse := addCustomer(t, inner, "ayse")
				res := createHeld(t, svc, s, ayse, []identity.Principal{ayse, ayse, ayse}, []string{"k1", "", "k1"})
				for i, r := range res {
					if r.err != nil {
						t.Fatalf("creation %d: %v, want its stored request", i, r.err)
					}
				}
				for _, i := range []int{0, 1, 2} {
					if stored, err := inner.Request(context.Background(), res[i].created.Request.ID); err != nil || stored.ID != res[i].created.Request.ID {
						t.Errorf("creation %d: stored %v (%v)", i, stored.ID, err)
					}
				}
				// Two creations shared key k1 in the batch: one created the
				// request, the other is a replay of it.
				keyed := res[0].created.Request.ID
				if res[0].created.Replayed == res[2].created.Replayed || res[2].created.Request.ID != keyed {
					t.Errorf("same key in the batch: %+v and %+v, want one request and one replay of it", res[0].created, res[2].created)
				}
				// No transaction repeated the committed batch (it would hit the
				// primary key): the held one, the batch, the replay's own look.
				if n := s.calls.Load(); n != 3 {
					t.Errorf("%d transactions, want 3", n)
				}
				// The client retries with its key: the same request.
				again, err := svc.Create(context.Background(), ayse, submission(100), "k1")
				if err != nil || !again.Replayed || again.Request.ID != keyed {
					t.Errorf("retry with the key: %+v %v", again, err)
				}
				if commits.Load() < 2 {
					t.Errorf("relay woken %d times after commits", commits.Load())
				}
			})
		})
	}
}

// A PostgreSQL backend killed while it commits a batch (pg_terminate_backend
// while the batch waits on a lock): the batch is not retried row by row, its
// callers are answered at once with the database's error, and a client
// retrying with its key gets a request, not a primary key violation.
func TestPostgresBackendKilledMidCommit(t *testing.T) {
	u := pgtest.URL(t)
	ctx := context.Background()
	inner, err := postgres.Open(ctx, u+"&application_name=yolda-victim")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	s := &sickStore{engineStore: inner}
	svc := intake.NewService(s, intake.Options{Batch: intake.BatchOptions{MaxBatch: 16, Writers: 1}})
	defer svc.Close()
	ayse := addCustomer(t, inner, "ayse")
	blocker, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close(ctx)
	// Another transaction holds the idempotency key the batch claims: the
	// batch's statement waits for it, inside its commit.
	tx, err := blocker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (owner_id, key, fingerprint, request_id, created_at)
		VALUES ($1, 'k1', 'other', 'req_other', now())`, ayse.UserID); err != nil {
		t.Fatal(err)
	}
	// The killer polls from a connection of its own, outside any
	// transaction: inside one, pg_stat_activity is read once and kept.
	killer, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close(ctx)
	killed := make(chan error, 1)
	go func() {
		// Kill the victim's backend once it waits on the lock.
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			var n int
			err := killer.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE application_name = 'yolda-victim' AND wait_event_type = 'Lock'`).Scan(&n)
			if err != nil || n > 0 {
				killed <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		killed <- errors.New("the victim never waited on the lock")
	}()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, key := range []string{"k1", "", "k2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = svc.Create(ctx, ayse, submission(i), key)
		}()
	}
	if err := <-killed; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	_ = tx.Rollback(ctx)
	if errs[0] == nil {
		t.Error("the creation whose backend was killed before it committed succeeded")
	}
	for i, err := range errs {
		if err == nil {
			continue // committed in a batch that did not wait on the lock
		}
		if errors.Is(err, intake.ErrRowRejected) {
			t.Errorf("creation %d: %v: a killed backend is not a bad row", i, err)
		}
	}
	// Nothing was retried row by row after the backend died: each batch
	// ran once.
	if n := s.calls.Load(); n > 3 {
		t.Errorf("%d transactions for 3 creations", n)
	}
	// The client retries with its key: a request, whatever happened.
	c, err := svc.Create(ctx, ayse, submission(0), "k1")
	if err != nil || c.Request.ID == "" {
		t.Errorf("retry after the killed backend: %+v %v", c, err)
	}
}
