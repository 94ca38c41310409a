package httpapi_test

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/ratelimit"
	"github.com/yolda/yolda/internal/ratelimit/memory"
	ratelimitredis "github.com/yolda/yolda/internal/ratelimit/redis"
	"github.com/yolda/yolda/internal/redistest"
)

// Every route that is limited names a class the policies know, and
// documents 429; the classes are the ones docs/security.md lists.
func TestRateLimitClasses(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{})
	policies := httpapi.DefaultRateLimits(ratelimit.Limit{Rate: 20, Burst: 40}, ratelimit.Limit{Rate: 5, Burst: 20})
	for _, rt := range f.api.Routes() {
		name := rt.Method + " " + rt.Pattern
		if rt.Public && rt.Limited && rt.Class == "" {
			t.Errorf("%s: a limited public route without a class", name)
		}
		if !rt.Public && rt.Class == "" {
			t.Errorf("%s: an authenticated route without a class", name)
		}
		if rt.Class == "" {
			continue
		}
		if _, ok := policies[rt.Class]; !ok {
			t.Errorf("%s: class %q has no policy", name, rt.Class)
		}
		if !slices.Contains(rt.Errors, 429) {
			t.Errorf("%s: limited (%s) but 429 is not among its documented answers", name, rt.Class)
		}
	}
}

// backends are the limiters the edge tests run on: the in-process one and,
// when a test server is there, the Redis one.
func limiterBackends(t *testing.T) map[string]func(t *testing.T) httpapi.Limiter {
	return map[string]func(t *testing.T) httpapi.Limiter{
		"memory": func(t *testing.T) httpapi.Limiter { return memory.New(nil) },
		"redis": func(t *testing.T) httpapi.Limiter {
			rdb := redistest.Client(t)
			return ratelimitredis.New(rdb, ratelimitredis.Options{Prefix: redistest.Prefix(t, rdb)})
		},
	}
}

func policies(t *testing.T, spec string) ratelimit.Policies {
	t.Helper()
	ps := httpapi.DefaultRateLimits(ratelimit.Limit{}, ratelimit.Limit{}) // every budget off
	if err := ps.Apply(spec); err != nil {
		t.Fatal(err)
	}
	return ps
}

func withLimiter(l httpapi.Limiter) func(*httpapi.Deps) {
	return func(d *httpapi.Deps) { d.Limiter = l }
}

// Budgets are per role and per class: a customer who used up its board
// reads may still watch its request and create one; an operator's board
// budget is its own and larger.
func TestRateLimitsPerRoleAndClass(t *testing.T) {
	for name, backend := range limiterBackends(t) {
		t.Run(name, func(t *testing.T) {
			f := setup(t, "sqlite", httpapi.Options{RateLimits: policies(t,
				"board.customer=0.001/s:3,board.staff=0.001/s:10,watch.customer=0.001/s:2,create-request.customer=0.001/s:1")},
				withLimiter(backend(t)))
			created := f.do(t, "POST", "/v1/requests", "ayse", validBody)
			if created.status != 202 {
				t.Fatalf("create: %d %s", created.status, created.body)
			}
			id := created.json(t)["id"].(string)
			if a := f.do(t, "POST", "/v1/requests", "ayse", validBody); a.status != 429 || a.header.Get("Retry-After") == "" {
				t.Errorf("second create past a burst of 1: %d, Retry-After %q", a.status, a.header.Get("Retry-After"))
			}
			codes := map[int]int{}
			for range 5 {
				codes[f.do(t, "GET", "/v1/requests", "ayse", "").status]++
			}
			if codes[200] != 3 || codes[429] != 2 {
				t.Errorf("customer board reads with a burst of 3: %v", codes)
			}
			if a := f.do(t, "GET", "/v1/requests/"+id, "ayse", ""); a.status != 200 {
				t.Errorf("watching after the board budget ran out: %d", a.status)
			}
			codes = map[int]int{}
			for range 10 {
				codes[f.do(t, "GET", "/v1/requests", "operator", "").status]++
			}
			if codes[200] != 10 {
				t.Errorf("operator's board reads, a burst of 10 of its own: %v", codes)
			}
			if a := f.do(t, "GET", "/v1/requests", "operator", ""); a.status != 429 {
				t.Errorf("operator's 11th board read: %d", a.status)
			}
			// Another customer has budgets of its own.
			if a := f.do(t, "GET", "/v1/requests", "mehmet", ""); a.status != 200 {
				t.Errorf("mehmet limited by ayse's reads: %d", a.status)
			}
			// A class with no budget for the role is not limited.
			for range 5 {
				if a := f.do(t, "GET", "/v1/me", "ayse", ""); a.status != 200 {
					t.Fatalf("default class (off here): %d", a.status)
				}
			}
		})
	}
}

// Every answer of a limited route says its budgets (IETF RateLimit and
// RateLimit-Policy): quota = burst, window = time to refill, remaining,
// and seconds until whole.
func TestRateLimitHeaders(t *testing.T) {
	f := setup(t, "sqlite", httpapi.Options{RateLimits: policies(t, "board.customer=2/s:4,board.address=100/s:500")})
	a := f.do(t, "GET", "/v1/requests", "ayse", "")
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if got, want := a.header.Get("RateLimit-Policy"), `"board.customer";q=4;w=2, "board.address";q=500;w=5`; got != want {
		t.Errorf("RateLimit-Policy %q, want %q", got, want)
	}
	if got, want := a.header.Get("RateLimit"), `"board.customer";r=3;t=1, "board.address";r=499;t=1`; got != want {
		t.Errorf("RateLimit %q, want %q", got, want)
	}
	for range 3 {
		a = f.do(t, "GET", "/v1/requests", "ayse", "")
	}
	a = f.do(t, "GET", "/v1/requests", "ayse", "")
	if a.status != 429 || a.header.Get("Retry-After") != "1" || !strings.HasPrefix(a.header.Get("RateLimit"), `"board.customer";r=0;t=2`) {
		t.Errorf("past the burst: %d, Retry-After %q, RateLimit %q", a.status, a.header.Get("Retry-After"), a.header.Get("RateLimit"))
	}
	if a.json(t)["type"] != "https://yolda.dev/problems/rate-limited" {
		t.Errorf("problem: %s", a.body)
	}
	// Unlimited routes say nothing about limits.
	if h := f.do(t, "GET", "/healthz", "", ""); h.header.Get("RateLimit") != "" {
		t.Errorf("healthz carries RateLimit %q", h.header.Get("RateLimit"))
	}
}

// The address budget is shared by everyone calling from the address;
// behind a trusted proxy it is the forwarded client's, and a client's own
// X-Forwarded-For counts for nothing when its peer is not trusted.
func TestRateLimitPerAddress(t *testing.T) {
	t.Run("shared by identities", func(t *testing.T) {
		f := setup(t, "sqlite", httpapi.Options{RateLimits: policies(t, "watch.address=0.001/s:3")})
		codes := map[int]int{}
		for _, u := range []string{"ayse", "mehmet", "operator", "admin"} {
			codes[f.do(t, "GET", "/v1/requests/req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P", u, "").status]++
		}
		if codes[404] != 3 || codes[429] != 1 {
			t.Errorf("four identities, one address with a burst of 3: %v", codes)
		}
	})
	t.Run("spoofed forwarding is ignored", func(t *testing.T) {
		f := setup(t, "sqlite", httpapi.Options{RateLimits: policies(t, "login.address=0.001/s:2")})
		codes := map[int]int{}
		for i := range 4 {
			codes[f.do(t, "POST", "/v1/auth/login", "", `{"username":"ayse","password":"wrong-password"}`,
				"X-Forwarded-For", "203.0.113."+string(rune('1'+i))).status]++
		}
		if codes[401] != 2 || codes[429] != 2 {
			t.Errorf("an untrusted client changing X-Forwarded-For: %v", codes)
		}
	})
	t.Run("trusted proxy", func(t *testing.T) {
		_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
		f := setup(t, "sqlite", httpapi.Options{RateLimits: policies(t, "login.address=0.001/s:2"), TrustedProxies: []*net.IPNet{loopback}})
		codes := map[int]int{}
		for i := range 4 {
			codes[f.do(t, "POST", "/v1/auth/login", "", `{"username":"ayse","password":"wrong-password"}`,
				"X-Forwarded-For", "203.0.113."+string(rune('1'+i%2))).status]++
		}
		if codes[401] != 4 {
			t.Errorf("two clients behind the trusted proxy, two attempts each: %v", codes)
		}
		if a := f.do(t, "POST", "/v1/auth/login", "", `{"username":"ayse","password":"wrong-password"}`, "X-Forwarded-For", "203.0.113.1"); a.status != 429 {
			t.Errorf("the first client's third attempt: %d", a.status)
		}
	})
}

// failingLimiter is a shared limiter whose server is down.
type failingLimiter struct{}

func (failingLimiter) Allow(context.Context, ...ratelimit.Check) (ratelimit.Decision, error) {
	return ratelimit.Decision{}, errors.New("dial tcp: connection refused: " + ratelimit.ErrUnavailable.Error())
}

// When the limiter cannot decide, a class fails open (the request is
// served, unlimited) or closed (503 with Retry-After), as its policy says.
func TestRateLimiterDown(t *testing.T) {
	ps := policies(t, "create-request.customer=1/s:1,login.address=1/s:1,board.customer=1/s:1,board.fail=closed")
	if !ps[httpapi.ClassLogin].FailClosed || ps[httpapi.ClassCreateRequest].FailClosed {
		t.Fatal("defaults: login fails closed, create-request open")
	}
	f := setup(t, "sqlite", httpapi.Options{RateLimits: ps}, withLimiter(failingLimiter{}))
	for range 3 {
		if a := f.do(t, "POST", "/v1/requests", "ayse", validBody); a.status != 202 {
			t.Fatalf("create-request fails open: %d %s", a.status, a.body)
		}
	}
	for _, c := range []struct{ path, user, body string }{
		{"/v1/auth/login", "", `{"username":"ayse","password":"ayse-password"}`},
		{"/v1/requests", "ayse", ""},
	} {
		method := "GET"
		if c.body != "" {
			method = "POST"
		}
		a := f.do(t, method, c.path, c.user, c.body)
		if a.status != 503 || a.header.Get("Retry-After") == "" || a.json(t)["type"] != "https://yolda.dev/problems/rate-limiter-unavailable" {
			t.Errorf("%s fails closed: %d %s", c.path, a.status, a.body)
		}
	}
	m := get(t, f.ops.URL+"/metrics")
	if !strings.Contains(m.body, `yolda_rate_limit_decisions_total{class="create-request",outcome="error"} 3`) {
		t.Errorf("limiter errors not counted:\n%.3000s", m.body)
	}
}

// Two servers (two API processes) over one Redis spend one budget: a
// client alternating between them is limited as one.
func TestTwoServersShareRedisBudgets(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	ps := func() ratelimit.Policies { return policies(t, "board.customer=0.001/s:4") }
	a := setup(t, "sqlite", httpapi.Options{RateLimits: ps()}, withLimiter(ratelimitredis.New(rdb, ratelimitredis.Options{Prefix: prefix})))
	// b is a second server over a's store and token secret: two
	// processes of one deployment.
	b := a.twin(t, httpapi.Options{RateLimits: ps()}, withLimiter(ratelimitredis.New(redistest.Client(t), ratelimitredis.Options{Prefix: prefix})))
	codes := map[int]int{}
	for i := range 8 {
		srv := a
		if i%2 == 1 {
			srv = b
		}
		codes[srv.do(t, "GET", "/v1/requests", "ayse", "").status]++
	}
	if codes[200] != 4 || codes[429] != 4 {
		t.Errorf("alternating between two servers with a shared burst of 4: %v", codes)
	}
}

func TestRateLimitSpec(t *testing.T) {
	ps := httpapi.DefaultRateLimits(ratelimit.Limit{Rate: 20, Burst: 40}, ratelimit.Limit{Rate: 5, Burst: 20})
	if err := ps.Apply("create-request.customer=6/m:3, board.staff=100/s:400, *.address=off, login.fail=open"); err != nil {
		t.Fatal(err)
	}
	if l := ps[httpapi.ClassCreateRequest].Identity[identity.Customer]; l.Rate != 0.1 || l.Burst != 3 {
		t.Errorf("create-request.customer: %v", l)
	}
	if l := ps[httpapi.ClassBoard].Identity[identity.Admin]; l.Rate != 100 || l.Burst != 400 {
		t.Errorf("board.staff for admin: %v", l)
	}
	for name, p := range ps {
		if !p.Address.Off() {
			t.Errorf("%s: address budget %v after *.address=off", name, p.Address)
		}
	}
	if ps[httpapi.ClassLogin].FailClosed {
		t.Error("login.fail=open ignored")
	}
	for _, bad := range []string{"nosuch.customer=1/s:1", "board.pilot=1/s:1", "board.customer=fast", "board.customer=1/s:0", "board.fail=maybe", "board"} {
		if err := ps.Apply(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// twin is a second server over f's store, accounts and tokens (another
// API process of the same deployment), with its own options and metrics.
func (f *fixture) twin(t *testing.T, opts httpapi.Options, deps ...func(*httpapi.Deps)) *fixture {
	d := f.deps
	d.Options = opts
	d.Registry = prometheus.NewRegistry()
	for _, change := range deps {
		change(&d)
	}
	g := *f
	g.deps, g.registry = d, d.Registry
	g.api = httpapi.New(d)
	g.srv = httptest.NewServer(g.api)
	t.Cleanup(g.srv.Close)
	g.ops = httptest.NewServer(g.api.OpsHandler())
	t.Cleanup(g.ops.Close)
	return &g
}
