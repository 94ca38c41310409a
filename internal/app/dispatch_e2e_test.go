package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/yolda/yolda/internal/bus/natstest"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
)

// dispatchEnv is what these tests set for every Yolda they start: short
// deadlines so that a request with nobody to take it ends within seconds.
var dispatchEnv = map[string]string{
	"YOLDA_OFFER_TIMEOUT":         "2s",
	"YOLDA_DISPATCH_WAIT":         "6s",
	"YOLDA_OFFER_EXPIRY_INTERVAL": "100ms",
	"YOLDA_SWEEP_INTERVAL":        "1s",
	"YOLDA_JWT_SECRET":            "e2e-secret-e2e-secret-e2e-secret-0123",
}

// current is the instance the clients talk to; it changes on a restart.
type current struct{ p atomic.Pointer[instance] }

func (c *current) url(path string) string { return c.p.Load().url(path) }

// call sends a JSON request as token's holder and decodes a JSON answer
// into out (if not nil). A transport error (the server is down) is err.
func call(client *http.Client, c *current, token, method, path, body string, out any) (int, error) {
	req, _ := http.NewRequest(method, c.url(path), strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode, nil
}

// driving is a driver's app: online, reporting where it is, taking every
// offer and walking each of its jobs to completed, until ctx ends. It
// rides out a server that is down, and finds its jobs by listing them, as
// an app does after a lost answer.
func driving(ctx context.Context, t *testing.T, c *current, token string, lat, lng float64) {
	client := &http.Client{Timeout: 5 * time.Second}
	pause := func() { // between polls, or while the server is down
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	for ctx.Err() == nil {
		if code, err := call(client, c, token, "PUT", "/v1/drivers/me/availability", `{"availability":"online"}`, nil); err != nil || code != 200 {
			pause()
			continue
		}
		loc := fmt.Sprintf(`{"lat":%f,"lng":%f,"recorded_at":%q}`, lat, lng, time.Now().UTC().Format(time.RFC3339Nano))
		if code, err := call(client, c, token, "POST", "/v1/drivers/me/location", loc, nil); err != nil || code != 204 {
			pause()
			continue
		}
		var offers struct {
			Items []struct {
				OfferID   string `json:"offer_id"`
				RequestID string `json:"request_id"`
			} `json:"items"`
		}
		if code, err := call(client, c, token, "GET", "/v1/drivers/me/offers", "", &offers); err != nil || code != 200 {
			pause()
			continue
		}
		for _, o := range offers.Items {
			// An accept whose answer was lost (the server died after the
			// commit) is found below, among the driver's jobs.
			_, _ = call(client, c, token, "POST", "/v1/offers/"+o.OfferID+"/accept", "", nil)
		}
		// The driver's jobs, as its app lists them: walk each to completed.
		var jobs struct {
			Items []struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			} `json:"items"`
		}
		if code, err := call(client, c, token, "GET", "/v1/requests?status=assigned,en_route,arrived,in_service", "", &jobs); err != nil || code != 200 {
			pause()
			continue
		}
		for _, j := range jobs.Items {
			steps := []string{"en_route", "arrived", "in_service", "completed"}
			for i, st := range steps {
				if st == j.Status {
					steps = steps[i+1:]
					break
				}
			}
			for _, step := range steps {
				if code, err := call(client, c, token, "POST", "/v1/requests/"+j.ID+"/progress", `{"status":"`+step+`"}`, nil); err != nil || code != 200 {
					break // the server is down, or the job moved on: look again
				}
			}
		}
		pause()
	}
}

// dispatchRun is one run of the kill test: how Yolda is deployed and which
// process is killed.
type dispatchRun struct {
	env environment
	// start starts the processes and returns the one clients use and the
	// one to kill.
	start func(t *testing.T) (api, victim *instance)
	// restart, if set, brings the killed process back and returns the new
	// one clients use.
	restart func(t *testing.T) *instance
}

// TestDispatchSurvivesKill9: requests come in while drivers take and
// complete jobs; a process running dispatch is killed with SIGKILL in the
// middle of its work. Every request still ends completed (through one
// assignment) or unfulfilled: none is left dispatching, or on a driver.
func TestDispatchSurvivesKill9(t *testing.T) {
	for k, v := range dispatchEnv {
		t.Setenv(k, v)
	}
	runs := map[string]func(t *testing.T) dispatchRun{
		// One process, every role, SQLite, the embedded broker and the
		// in-process index: the process is killed and started again.
		"embedded": func(t *testing.T) dispatchRun {
			e := environment{dataDir: t.TempDir()}
			return dispatchRun{env: e,
				start:   func(t *testing.T) (*instance, *instance) { in := e.start(t); return in, in },
				restart: func(t *testing.T) *instance { return e.start(t) },
			}
		},
		// PostgreSQL, a nats-server and Redis, shared by an API process and
		// two dispatch processes; one of those is killed, the other carries
		// on.
		"split": func(t *testing.T) dispatchRun {
			redisURL := os.Getenv("YOLDA_TEST_REDIS_URL")
			if redisURL == "" {
				if os.Getenv("YOLDA_REQUIRE_SERVICES") != "" {
					t.Fatal("YOLDA_TEST_REDIS_URL is not set and YOLDA_REQUIRE_SERVICES is")
				}
				t.Skip("YOLDA_TEST_REDIS_URL not set: the split run shares positions through Redis")
			}
			flushRedis(t, redisURL)
			e := environment{dataDir: t.TempDir(), databaseURL: pgtest.URL(t)}
			nats := natstest.StartServer(t, natstest.Options{})
			t.Setenv("YOLDA_NATS_URL", nats.URL())
			t.Setenv("YOLDA_REDIS_URL", redisURL)
			return dispatchRun{env: e, start: func(t *testing.T) (*instance, *instance) {
				api := e.start(t, "--roles", "api,relay,notify")
				victim := e.start(t, "--roles", "dispatch")
				e.start(t, "--roles", "dispatch")
				return api, victim
			}}
		},
	}
	for name, newRun := range runs {
		t.Run(name, func(t *testing.T) {
			run := newRun(t)
			e := run.env
			e.addAccounts(t)
			const nDrivers, nRequests = 12, 40
			for i := range nDrivers {
				if out, err := e.run(t, "users", "add", "--role", "driver", "--username", fmt.Sprintf("driver%02d", i),
					"--password", "driver-password", "--vehicle-plate", fmt.Sprintf("34TOW%02d", i), "--capabilities", "tow,jump_start"); err != nil {
					t.Fatalf("users add: %v %s", err, out)
				}
			}
			api, victim := run.start(t)
			var c current
			c.p.Store(api)
			customer := login(t, api, "ayse", "ayse-password")
			operator := login(t, api, "operator1", "op-password")
			ctx, stopDrivers := context.WithCancel(context.Background())
			var drivers sync.WaitGroup
			for i := range nDrivers {
				token := login(t, api, fmt.Sprintf("driver%02d", i), "driver-password")
				drivers.Add(1)
				go func() {
					defer drivers.Done()
					driving(ctx, t, &c, token, 39.93+float64(i%4)*0.01, 32.85+float64(i/4)*0.01)
				}()
			}
			defer func() { stopDrivers(); drivers.Wait() }()

			client := &http.Client{Timeout: 10 * time.Second}
			var ids []string
			killed := false
			for len(ids) < nRequests {
				id, code, err := post(client, c.p.Load(), customer)
				switch {
				case err == nil && code == 202:
					ids = append(ids, id)
				case run.restart == nil:
					t.Fatalf("post: %d %v", code, err)
				}
				if !killed && len(ids) >= nRequests/2 && offersMade(victim) > 0 {
					killed = true
					if err := victim.cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
					<-victim.done
					if run.restart != nil {
						c.p.Store(run.restart(t))
					}
				}
				time.Sleep(25 * time.Millisecond) // the customers' pace
			}
			if !killed {
				t.Fatal("the process to kill made no offer while the requests came in")
			}

			// Every request ends completed or unfulfilled.
			var last map[string]int
			until(t, 2*time.Minute, func() bool {
				last = map[string]int{}
				for _, id := range ids {
					var r struct {
						Status string `json:"status"`
					}
					if code, err := call(client, &c, operator, "GET", "/v1/requests/"+id, "", &r); err != nil || code != 200 {
						return false
					}
					last[r.Status]++
				}
				return last["completed"]+last["unfulfilled"] == len(ids)
			}, func() string { return fmt.Sprintf("requests by status: %v", last) })
			stopDrivers()
			drivers.Wait()
			for _, id := range ids {
				var r struct {
					Status   string `json:"status"`
					Timeline []struct {
						Status string `json:"status"`
					} `json:"timeline"`
				}
				if _, err := call(client, &c, operator, "GET", "/v1/requests/"+id, "", &r); err != nil {
					t.Fatal(err)
				}
				var steps []string
				for _, e := range r.Timeline {
					steps = append(steps, e.Status)
				}
				want := "received dispatching unfulfilled"
				if r.Status == "completed" {
					want = "received dispatching assigned en_route arrived in_service completed"
				}
				if got := strings.Join(steps, " "); got != want {
					t.Errorf("request %s: timeline %s, want %s", id, got, want)
				}
			}
			var list struct {
				Items []struct {
					ID               string  `json:"id"`
					CurrentRequestID *string `json:"current_request_id"`
				} `json:"items"`
			}
			if code, err := call(client, &c, operator, "GET", "/v1/drivers?limit=100", "", &list); err != nil || code != 200 || len(list.Items) != nDrivers {
				t.Fatalf("drivers: %d %v %d", code, err, len(list.Items))
			}
			for _, d := range list.Items {
				if d.CurrentRequestID != nil {
					t.Errorf("driver %s still on %s", d.ID, *d.CurrentRequestID)
				}
			}
			t.Logf("%s: %d requests across a SIGKILL of a dispatch process: %v", name, len(ids), last)
			c.p.Load().cmd.Process.Signal(syscall.SIGTERM)
		})
	}
}

// offersMade is how many offers a process has made, by its metrics.
func offersMade(in *instance) float64 {
	resp, err := http.Get(in.opsURL("/metrics"))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, `yolda_dispatch_decisions_total{outcome="offer"} `); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return n
		}
	}
	return 0
}

// until polls cond with a generous deadline; what describes the state
// when it gives up.
func until(t *testing.T, deadline time.Duration, cond func() bool, what func() string) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("after %s: %s", deadline, what())
		}
		time.Sleep(200 * time.Millisecond) // polling a condition, not a synchronisation
	}
}

// flushRedis empties the test's Redis database (its own, by number), so
// that drivers of an earlier run are not in the index.
func flushRedis(t *testing.T, url string) {
	t.Helper()
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("flush redis: %v", err)
	}
}
