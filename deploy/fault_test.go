package deploy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/yolda/yolda/internal/sim"
)

// faultScale is the size of a fault run: YOLDA_FAULT_RUN=full for the one
// docs/operations.md reports, the short one (CI) otherwise.
type faultScale struct {
	drivers, customers int
	rate               float64
	duration, drain    time.Duration
	// gap is the time between kills, down how long a victim stays dead.
	gap, down time.Duration
}

func scale() faultScale {
	if os.Getenv("YOLDA_FAULT_RUN") == "full" {
		return faultScale{drivers: 200, customers: 400, rate: 8, duration: 4 * time.Minute, drain: 5 * time.Minute, gap: 30 * time.Second, down: 5 * time.Second}
	}
	return faultScale{drivers: 40, customers: 60, rate: 3, duration: 75 * time.Second, drain: 4 * time.Minute, gap: 10 * time.Second, down: 3 * time.Second}
}

// kill is one victim of the run.
type kill struct {
	name   string // what is killed
	victim string // cluster.sh's name for it ("" until chosen)
	// failover is how long until the service went on without the victim
	// (the probe passed); recovered, until the victim was back and ready.
	failover, recovered time.Duration
	at                  time.Time
	edgeErrors          map[int]int
	note                string
}

// TestFaultRun drives a bayram-shaped load through Nginx with the
// simulator and kills, one after another, an api process, a realtime
// process, a dispatch worker, the NATS node leading the JOBS stream and
// Redis (SIGKILL, then a restart), and then checks the database: no
// accepted request lost, no driver on two jobs at once, no request stuck.
func TestFaultRun(t *testing.T) {
	sc := scale()
	c := startCluster(t, "YOLDA_EDGE_LOGIN_RATE=2000", "YOLDA_EDGE_LOGIN_BURST=4000",
		"YOLDA_RATE_LIMITS=*.address=off,login.address=1000/s:4000", "YOLDA_OFFER_TIMEOUT=10s", "YOLDA_SWEEP_INTERVAL=5s")
	c.yolda(t, "sim", "--setup-only", "--drivers", strconv.Itoa(sc.drivers), "--customers", strconv.Itoa(sc.customers), "--url", c.base)
	c.yolda(t, "users", "add", "--role", "customer", "--username", "prober", "--password", "prober-password")
	probeToken := c.login(t, "prober", "prober-password")

	pem, _ := os.ReadFile(c.env["NGINX_CERT"])
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		rep sim.Report
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		rep, err := sim.Run(ctx, sim.Options{BaseURL: c.base, TLS: &tls.Config{RootCAs: pool},
			Drivers: sc.drivers, Customers: sc.customers, Profile: sim.Bayram, Rate: sc.rate,
			Duration: sc.duration, Drain: sc.drain, Speedup: 30, Seed: 1})
		done <- result{rep, err}
	}()

	api := func() error {
		a, err := c.try("GET", "/v1/me", probeToken, "")
		if err == nil && a.status != 200 {
			err = fmt.Errorf("status %d", a.status)
		}
		return err
	}
	ws := func() error {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conn, _, err := websocket.Dial(dctx, "wss"+strings.TrimPrefix(c.base, "https")+"/v1/ws", &websocket.DialOptions{
			HTTPClient: c.client, HTTPHeader: http.Header{"Authorization": {"Bearer " + probeToken}}})
		if err == nil {
			conn.CloseNow()
		}
		return err
	}
	kills := []*kill{
		{name: "api process", victim: "api-1"},
		{name: "realtime process", victim: "realtime-1"},
		{name: "dispatch worker", victim: "dispatch-1"},
		{name: "NATS leader of JOBS"},
		{name: "Redis", victim: "redis"},
	}
	probes := map[string]func() error{"api process": api, "realtime process": ws, "dispatch worker": api,
		"NATS leader of JOBS": func() error { return c.jobsLeaderIsNot(t, "") }, "Redis": api}
	// Let the load build up before the first kill.
	sleep(ctx, sc.gap)
	for _, k := range kills {
		if k.victim == "" {
			k.victim = c.jobsLeader(t)
		}
		probe := probes[k.name]
		if k.name == "NATS leader of JOBS" {
			victim := k.victim
			probe = func() error { return c.jobsLeaderIsNot(t, victim) }
		}
		k.at = time.Now()
		c.script(t, "kill", k.victim)
		for probe() != nil && time.Since(k.at) < time.Minute {
			time.Sleep(50 * time.Millisecond)
		}
		k.failover = time.Since(k.at)
		sleep(ctx, time.Until(k.at.Add(sc.down)))
		c.script(t, "start", k.victim)
		if err := c.waitReady(k.victim, 2*time.Minute); err != nil {
			t.Errorf("%s (%s) did not come back: %v", k.name, k.victim, err)
		}
		k.recovered = time.Since(k.at)
		sleep(ctx, time.Until(k.at.Add(sc.gap)))
	}
	res := <-done
	if res.err != nil {
		t.Fatalf("sim: %v", res.err)
	}
	rep := res.rep
	var sb strings.Builder
	rep.Print(&sb)
	t.Logf("simulator:\n%s", sb.String())
	for i, k := range kills {
		until := time.Now()
		if i+1 < len(kills) {
			until = kills[i+1].at
		}
		k.edgeErrors = c.edgeErrors(t, k.at, until)
	}

	// The database's word.
	db, err := pgx.Connect(context.Background(), c.env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	var lost []string
	for _, id := range rep.Accepted {
		var n int
		if err := db.QueryRow(context.Background(), `SELECT count(*) FROM requests WHERE id = $1`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			lost = append(lost, id)
		}
	}
	// Stuck: a request waiting on the platform (received, awaiting
	// insurance, dispatching) that the platform does not move on, within
	// the sweeper's and dispatch's deadlines (dispatching ends unfulfilled
	// after YOLDA_DISPATCH_WAIT, 1 min). Requests with a driver when the
	// simulator stopped wait on that driver, who stopped with it: counted
	// apart.
	stuck := -1
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		db.QueryRow(context.Background(), `SELECT count(*) FROM requests WHERE status IN ('received','awaiting_insurance','dispatching')`).Scan(&stuck)
		if stuck == 0 {
			break
		}
		time.Sleep(2 * time.Second)
	}
	var withDriver int
	db.QueryRow(context.Background(), `SELECT count(*) FROM requests WHERE status IN ('assigned','en_route','arrived','in_service')`).Scan(&withDriver)
	var twoOpen, overlapping, twoAccepted, total int
	db.QueryRow(context.Background(), `SELECT count(*) FROM requests`).Scan(&total)
	db.QueryRow(context.Background(), `SELECT count(*) FROM (SELECT driver_id FROM requests
		WHERE status IN ('assigned','en_route','arrived','in_service') GROUP BY driver_id HAVING count(*) > 1) x`).Scan(&twoOpen)
	db.QueryRow(context.Background(), `WITH jobs AS (
		SELECT r.id, r.driver_id, r.assigned_at,
		       COALESCE((SELECT min(t.at) FROM request_timeline t WHERE t.request_id = r.id AND t.at >= r.assigned_at
		                 AND t.status IN ('completed','cancelled','rejected','unfulfilled')), now()) AS ended
		FROM requests r WHERE r.driver_id IS NOT NULL AND r.assigned_at IS NOT NULL)
		SELECT count(*) FROM jobs a JOIN jobs b ON a.driver_id = b.driver_id AND a.id < b.id
		WHERE a.assigned_at < b.ended AND b.assigned_at < a.ended`).Scan(&overlapping)
	db.QueryRow(context.Background(), `SELECT count(*) FROM (SELECT request_id FROM offers WHERE status = 'accepted'
		GROUP BY request_id HAVING count(*) > 1) x`).Scan(&twoAccepted)

	report := faultReport(sc, rep, kills, total, len(lost), twoOpen+overlapping+twoAccepted, stuck, withDriver, time.Since(start))
	t.Log("\n" + report)
	if path := os.Getenv("YOLDA_FAULT_REPORT"); path != "" {
		os.WriteFile(path, []byte(report), 0o644)
	}
	if len(lost) > 0 {
		t.Errorf("%d accepted requests are not in the database: %v", len(lost), lost[:min(len(lost), 5)])
	}
	if twoOpen+overlapping+twoAccepted > 0 {
		t.Errorf("double assignments: %d drivers on two open jobs, %d overlapping jobs, %d requests with two accepted offers", twoOpen, overlapping, twoAccepted)
	}
	if stuck != 0 {
		t.Errorf("%d requests stuck waiting on the platform (received, awaiting insurance, dispatching)", stuck)
	}
	if rep.Created == 0 || rep.Assigned == 0 {
		t.Errorf("the load did nothing: %d created, %d assigned", rep.Created, rep.Assigned)
	}
	if rep.Reconnects == 0 {
		t.Error("killing a realtime process reconnected no client")
	}
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// waitReady waits for a restarted process to answer its probe.
func (c *cluster) waitReady(name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c.ready(name) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s", timeout)
}

func (c *cluster) ready(name string) bool {
	url := ""
	switch {
	case name == "redis":
		return c.redisPing()
	case strings.HasPrefix(name, "nats-"):
		i, _ := strconv.Atoi(strings.TrimPrefix(name, "nats-"))
		mons := strings.Split(c.env["NATS_MONITOR"], ",")
		url = mons[i-1] + "/healthz?js-enabled-only=true"
	default:
		for entry := range strings.SplitSeq(c.env["OPS_ADDRS"], ",") {
			if n, addr, _ := strings.Cut(entry, "="); n == name {
				url = "http://" + addr + "/readyz"
			}
		}
	}
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func (c *cluster) redisPing() bool {
	addr := strings.TrimPrefix(strings.Split(c.env["REDIS_URL"], "/")[2], "")
	conn, err := (&netDialer{}).dial(addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.Write([]byte("PING\r\n"))
	b := make([]byte, 7)
	n, _ := io.ReadAtLeast(conn, b, 5)
	return strings.HasPrefix(string(b[:n]), "+PONG")
}

// jsz is the part of NATS's /jsz?accounts=true&streams=true read here.
type jsz struct {
	Accounts []struct {
		Streams []struct {
			Name    string `json:"name"`
			Cluster struct {
				Leader string `json:"leader"`
			} `json:"cluster"`
		} `json:"stream_detail"`
	} `json:"account_details"`
}

// jobsLeaderOn asks one node which node leads JOBS ("" if none, or the
// node does not answer).
func jobsLeaderOn(mon string) string {
	resp, err := http.Get(mon + "/jsz?accounts=true&streams=true")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var j jsz
	json.NewDecoder(resp.Body).Decode(&j)
	for _, a := range j.Accounts {
		for _, s := range a.Streams {
			if s.Name == "JOBS" {
				return s.Cluster.Leader
			}
		}
	}
	return ""
}

// jobsLeader is the cluster.sh name of the node leading JOBS.
func (c *cluster) jobsLeader(t *testing.T) string {
	for range 100 {
		for mon := range strings.SplitSeq(c.env["NATS_MONITOR"], ",") {
			if l := jobsLeaderOn(mon); l != "" {
				return "nats-" + strings.TrimPrefix(l, "n")
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no node leads JOBS")
	return ""
}

// jobsLeaderIsNot passes once a live node reports a JOBS leader other
// than victim.
func (c *cluster) jobsLeaderIsNot(_ *testing.T, victim string) error {
	for mon := range strings.SplitSeq(c.env["NATS_MONITOR"], ",") {
		if l := jobsLeaderOn(mon); l != "" && "nats-"+strings.TrimPrefix(l, "n") != victim {
			return nil
		}
	}
	return fmt.Errorf("JOBS has no leader but %s", victim)
}

// edgeErrors counts Nginx's answers of 4xx/5xx (but 401/404/409, which
// the load makes by design) between from and to, by status.
func (c *cluster) edgeErrors(t *testing.T, from, to time.Time) map[int]int {
	b, err := os.ReadFile(c.dir + "/nginx/access.log")
	if err != nil {
		t.Logf("access log: %v", err)
		return nil
	}
	out := map[int]int{}
	for line := range strings.SplitSeq(string(b), "\n") {
		i, j := strings.Index(line, "["), strings.Index(line, "]")
		if i < 0 || j < i {
			continue
		}
		at, err := time.Parse(time.RFC3339, line[i+1:j])
		if err != nil || at.Before(from.Truncate(time.Second)) || !at.Before(to) {
			continue
		}
		rest := line[j+1:]
		q := strings.LastIndex(rest, `" `)
		if q < 0 {
			continue
		}
		fields := strings.Fields(rest[q+2:])
		if len(fields) == 0 {
			continue
		}
		code, _ := strconv.Atoi(fields[0])
		if code >= 400 && !slices.Contains([]int{401, 404, 409}, code) {
			out[code]++
		}
	}
	return out
}

func faultReport(sc faultScale, rep sim.Report, kills []*kill, total, lost, doubles, stuck, withDriver int, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Fault run: %d drivers, %d customers, bayram to %.0f requests/s over %s (+ drain), %s in all.\n\n",
		sc.drivers, sc.customers, sc.rate, sc.duration, took.Round(time.Second))
	fmt.Fprintf(&b, "| killed (SIGKILL) | process | service went on after | back and ready after (down %s, then started) | edge answers >= 400 until the next kill |\n", sc.down)
	fmt.Fprintf(&b, "| --- | --- | --- | --- | --- |\n")
	for _, k := range kills {
		codes := make([]int, 0, len(k.edgeErrors))
		for code := range k.edgeErrors {
			codes = append(codes, code)
		}
		sort.Ints(codes)
		var errs []string
		for _, code := range codes {
			errs = append(errs, fmt.Sprintf("%d: %d", code, k.edgeErrors[code]))
		}
		if len(errs) == 0 {
			errs = []string{"none"}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", k.name, k.victim, k.failover.Round(10*time.Millisecond), k.recovered.Round(100*time.Millisecond), strings.Join(errs, ", "))
	}
	kinds := make([]string, 0, len(rep.ErrorsByKind))
	for k := range rep.ErrorsByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var errs []string
	for _, k := range kinds {
		errs = append(errs, fmt.Sprintf("%s: %d", k, rep.ErrorsByKind[k]))
	}
	fmt.Fprintf(&b, "\nSimulator: %d requests accepted (202), %d assigned, %d completed, %d unfulfilled, %d still open at its end; "+
		"%d WebSocket reconnects (loss to new connection p50 %s, max %s); failures seen by the simulator: %s.\n",
		rep.Created, rep.Assigned, rep.Completed, rep.Unfulfilled, rep.StillOpen, rep.Reconnects,
		rep.ReconnectTime.P50.Round(time.Millisecond), rep.ReconnectTime.Max.Round(time.Millisecond), strings.Join(append(errs, "total "+strconv.FormatInt(rep.Errors, 10)), "; "))
	fmt.Fprintf(&b, "\nDatabase afterwards: %d requests; accepted but missing: %d; double assignments: %d; stuck waiting on the platform: %d; "+
		"on a job with a driver when the simulator (and its drivers) stopped: %d.\n", total, lost, doubles, stuck, withDriver)
	return b.String()
}
