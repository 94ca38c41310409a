package hotread_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/cache"
	cachememory "github.com/yolda/yolda/internal/cache/memory"
	cacheredis "github.com/yolda/yolda/internal/cache/redis"
	"github.com/yolda/yolda/internal/hotread"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/redistest"
	"github.com/yolda/yolda/internal/store/sqlite"
)

var ctx = context.Background()

const submission = `{
  "service_type": "tow",
  "location": {"lat": 41.0082, "lng": 28.9784, "address": "Fatih, İstanbul", "province": "İstanbul", "district": "Fatih"},
  "destination": {"lat": 41.05, "lng": 29.01, "address": "Servis, Şişli"},
  "vehicle": {"plate": "34ABC123", "make": "Fiat", "model": "Egea", "type": "car"},
  "policy": {"insurer": "anadolu", "policy_number": "POL-123456"},
  "contact": {"name": "Ayşe Yılmaz", "phone": "+905551112233"}
}`

// The accounts of every test, created in each store by openSQLite.
var ayse, mehmet, operator identity.Principal

// counting counts the reads that reach the database.
type counting struct {
	intake.Store
	reads atomic.Int64
	// hold, when set, is called after a read returns from the database
	// and before the decorator sees it.
	hold func()
}

func (c *counting) Requests(ctx context.Context, f intake.Filter) ([]intake.Request, error) {
	c.reads.Add(1)
	rs, err := c.Store.Requests(ctx, f)
	if c.hold != nil {
		c.hold()
	}
	return rs, err
}

func openSQLite(t *testing.T) *sqlite.Store {
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "yolda.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	accounts, err := account.NewService(s, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*identity.Principal{&ayse, &mehmet, &operator} {
		role := identity.Customer
		name := map[*identity.Principal]string{&ayse: "ayse", &mehmet: "mehmet", &operator: "operator"}[p]
		if p == &operator {
			role = identity.Operator
		}
		u, err := accounts.Add(ctx, account.NewUser{Username: name, Password: name + "-password", Role: role})
		if err != nil {
			t.Fatal(err)
		}
		*p = identity.Principal{UserID: u.ID, Username: u.Username, Role: u.Role}
	}
	return s
}

// caches are the backends the tests run on; each call makes one cache
// (for Redis, a fresh namespace shared by the processes of one test).
func caches(t *testing.T) map[string]func(t *testing.T) func() cache.Cache {
	return map[string]func(t *testing.T) func() cache.Cache{
		"memory": func(t *testing.T) func() cache.Cache {
			c := cachememory.New(0, nil)
			return func() cache.Cache { return c }
		},
		"redis": func(t *testing.T) func() cache.Cache {
			rdb := redistest.Client(t)
			prefix := redistest.Prefix(t, rdb)
			return func() cache.Cache { return cacheredis.New(redistest.Client(t), cacheredis.Options{Prefix: prefix}) }
		},
	}
}

// proc is one process: a service over the decorated store.
type proc struct {
	db  *counting
	svc *intake.Service
}

func newProc(t *testing.T, store intake.Store, c cache.Cache) *proc {
	db := &counting{Store: store}
	dec, err := hotread.NewRequests(db, c, hotread.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := intake.NewService(dec, intake.Options{})
	t.Cleanup(svc.Close)
	return &proc{db: db, svc: svc}
}

func create(t *testing.T, p *proc, who identity.Principal) intake.Request {
	t.Helper()
	var sub intake.Submission
	if err := json.Unmarshal([]byte(submission), &sub); err != nil {
		t.Fatal(err)
	}
	c, err := p.svc.Create(ctx, who, sub, "")
	if err != nil {
		t.Fatal(err)
	}
	return c.Request
}

func forEachCache(t *testing.T, fn func(t *testing.T, newCache func() cache.Cache)) {
	for name, mk := range caches(t) {
		t.Run(name, func(t *testing.T) { fn(t, mk(t)) })
	}
}

// A hit is the request exactly as the database gives it, hidden fields
// and all; the second read costs no query.
func TestHitIsTheStoredRequest(t *testing.T) {
	forEachCache(t, func(t *testing.T, newCache func() cache.Cache) {
		p := newProc(t, openSQLite(t), newCache())
		r := create(t, p, ayse)
		first, err := p.svc.Get(ctx, ayse, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		second, err := p.svc.Get(ctx, ayse, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(first, second); d != "" {
			t.Errorf("cached read differs from the database's (-db +cache):\n%s", d)
		}
		a, _ := json.Marshal(first)
		b, _ := json.Marshal(second)
		if string(a) != string(b) {
			t.Errorf("representations differ:\n%s\n%s", a, b)
		}
		if n := p.db.reads.Load(); n != 1 {
			t.Errorf("%d database reads for two Gets, want 1", n)
		}
	})
}

// Read-your-writes: a watcher's read caches the request; its customer
// cancels it; the customer's next read, through this process or another
// sharing the cache, is the cancelled request.
func TestReadYourWrites(t *testing.T) {
	forEachCache(t, func(t *testing.T, newCache func() cache.Cache) {
		store := openSQLite(t)
		a := newProc(t, store, newCache())
		r := create(t, a, ayse)
		for _, p := range []*proc{a} {
			if _, err := p.svc.Get(ctx, ayse, r.ID); err != nil {
				t.Fatal(err)
			}
		}
		readers := []*proc{a}
		if _, ok := newCache().(*cacheredis.Cache); ok {
			b := newProc(t, store, newCache()) // another process
			if _, err := b.svc.Get(ctx, operator, r.ID); err != nil {
				t.Fatal(err)
			}
			readers = append(readers, b)
		}
		if _, err := a.svc.Cancel(ctx, ayse, r.ID, "found help"); err != nil {
			t.Fatal(err)
		}
		for i, p := range readers {
			got, err := p.svc.Get(ctx, ayse, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != intake.StatusCancelled {
				t.Errorf("process %d: the writer reads %s after cancelling", i, got.Status)
			}
		}
	})
}

// A reader that read the request before a change and fills the cache
// after the change's invalidation does not bring the old status back.
func TestLateFillCannotHideAChange(t *testing.T) {
	forEachCache(t, func(t *testing.T, newCache func() cache.Cache) {
		store := openSQLite(t)
		writer := newProc(t, store, newCache())
		reader := newProc(t, store, newCache())
		r := create(t, writer, ayse)
		read, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		reader.db.hold = func() { once.Do(func() { close(read); <-release }) }
		got := make(chan intake.Request, 1)
		go func() {
			r, err := reader.svc.Get(ctx, operator, r.ID)
			if err != nil {
				t.Error(err)
			}
			got <- r
		}()
		<-read // the reader has the old version from the database
		if _, err := writer.svc.Cancel(ctx, ayse, r.ID, "found help"); err != nil {
			t.Fatal(err)
		}
		close(release) // now it fills the cache with what it read
		if old := <-got; old.Status == intake.StatusCancelled {
			t.Fatal("the reader's database read came after the cancel: the race was not staged")
		}
		for _, p := range []*proc{writer, reader} {
			now, err := p.svc.Get(ctx, ayse, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if now.Status != intake.StatusCancelled {
				t.Errorf("after a late fill: %s", now.Status)
			}
		}
	})
}

// Another customer's request is not found, cached or not, and a cached
// entry outside the caller's scope is not what answers it.
func TestScope(t *testing.T) {
	forEachCache(t, func(t *testing.T, newCache func() cache.Cache) {
		p := newProc(t, openSQLite(t), newCache())
		r := create(t, p, ayse)
		if _, err := p.svc.Get(ctx, ayse, r.ID); err != nil { // cached now
			t.Fatal(err)
		}
		before := p.db.reads.Load()
		if _, err := p.svc.Get(ctx, mehmet, r.ID); !errors.Is(err, intake.ErrNotFound) {
			t.Errorf("mehmet reads ayse's request: %v", err)
		}
		if p.db.reads.Load() != before+1 {
			t.Error("a read outside the caller's scope was answered from the cache (it must cost what a miss costs)")
		}
		if _, err := p.svc.Get(ctx, operator, r.ID); err != nil {
			t.Errorf("staff read: %v", err)
		}
	})
}

// Consumers' batched updates invalidate too.
func TestBatchedUpdatesInvalidate(t *testing.T) {
	forEachCache(t, func(t *testing.T, newCache func() cache.Cache) {
		store := openSQLite(t)
		c := newCache()
		p := newProc(t, store, c)
		r := create(t, p, ayse)
		p.svc.Get(ctx, ayse, r.ID)
		dec, _ := hotread.NewRequests(store, c, hotread.Options{})
		u := &intake.Update{RequestID: r.ID, Apply: func(x *intake.Request) (intake.Change, error) {
			x.Advance(time.Now().UTC())
			x.Notes = "changed by a consumer"
			return intake.Change{}, nil
		}}
		if err := dec.UpdateRequests(ctx, []*intake.Update{u}); err != nil || u.Err != nil {
			t.Fatal(err, u.Err)
		}
		got, _ := p.svc.Get(ctx, ayse, r.ID)
		if got.Notes != "changed by a consumer" || got.Version != r.Version+1 {
			t.Errorf("after a batched update: notes %q version %d", got.Notes, got.Version)
		}
	})
}

// downCache is a cache whose server does not answer.
type downCache struct{}

func (downCache) Get(context.Context, string) (cache.Entry, bool, error) {
	return cache.Entry{}, false, cache.ErrUnavailable
}
func (downCache) Fill(context.Context, string, cache.Entry, time.Duration) error {
	return cache.ErrUnavailable
}
func (downCache) Invalidate(context.Context, string, int64, time.Duration) error {
	return cache.ErrUnavailable
}
func (downCache) GetScoped(context.Context, string, string) ([]byte, int64, bool, error) {
	return nil, 0, false, cache.ErrUnavailable
}
func (downCache) FillScoped(context.Context, string, string, int64, []byte, time.Duration) error {
	return cache.ErrUnavailable
}
func (downCache) Bump(context.Context, string) error { return cache.ErrUnavailable }

// With the cache down, reads and writes go on against the database.
func TestCacheDown(t *testing.T) {
	p := newProc(t, openSQLite(t), downCache{})
	r := create(t, p, ayse)
	if _, err := p.svc.Cancel(ctx, ayse, r.ID, "found help"); err != nil {
		t.Fatalf("cancel with the cache down: %v", err)
	}
	got, err := p.svc.Get(ctx, ayse, r.ID)
	if err != nil || got.Status != intake.StatusCancelled {
		t.Fatalf("read with the cache down: %v %v", got.Status, err)
	}
}
