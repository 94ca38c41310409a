package relay_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/bus/natstest"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/relay"
	"github.com/yolda/yolda/internal/telemetry"
)

// The pipeline tests against a real nats-server process, as production
// runs it: one server that is SIGKILLed and restarted while requests pour
// in, then a three-node cluster that loses a node.

// newExternalPipeline is a pipeline on the engine's store against the
// external broker cfg names. The logs of the bus and the relay are printed
// if the test fails.
func newExternalPipeline(t *testing.T, engine string, cfg bus.Config, opts relay.Options) (*pipeline, *prometheus.Registry) {
	t.Helper()
	return newPipelineOn(t, stores[engine](t), cfg, opts, tailLogger(t))
}

// TestExternalServerPipeline SIGKILLs a nats-server process in the middle
// of a stream of requests and restarts it. (The pipeline's other
// guarantees run against an external server in pipeline_test.go.)
func TestExternalServerPipeline(t *testing.T) {
	forEachStore(t, func(t *testing.T, engine string) {
		const n = 2000
		srv := natstest.StartServer(t, natstest.Options{})
		p, reg := newExternalPipeline(t, engine, bus.Config{URL: srv.URL()}, relay.Options{})
		calls, handled := p.countingNotify(t)

		start := time.Now()
		var ids []string
		var created time.Duration
		done := make(chan struct{})
		go func() {
			defer close(done)
			ids = p.createPaced(t, n, 2*time.Second)
			created = time.Since(start)
		}()
		t.Cleanup(func() { <-done }) // before the pipeline is torn down
		time.Sleep(time.Second)
		srv.Kill()
		killedAt := time.Since(start)
		time.Sleep(time.Second)
		srv.Restart()
		restartedAt := time.Since(start)
		<-done
		if t.Failed() {
			return
		}
		p.waitSettled(t, ids, handled, 45*time.Second)
		settled := time.Since(start)

		c := p.check(t, reg, ids, calls.Load())
		t.Logf("nats-server SIGKILLed at %s, restarted (same port and store) and ready at %s; %d requests created in %s; all settled at %s",
			killedAt.Round(time.Millisecond), restartedAt.Round(time.Millisecond), n, created.Round(time.Millisecond), settled.Round(time.Millisecond))
		t.Logf("counts: %s", c)
		c.assert(t, n)
	})
}

// TestClusterNodeKilledDuringPublishLoad runs the pipeline against a
// three-node cluster with R3 streams and SIGKILLs the EVENTS stream leader
// a second into a steady load. The node stays dead until everything is
// settled and checked; then it is restarted and must catch up.
func TestClusterNodeKilledDuringPublishLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("three nats-server processes: not in -short mode")
	}
	forEachStore(t, func(t *testing.T, engine string) {
		const n = 3000
		cluster := natstest.StartCluster(t, 3)
		p, reg := newExternalPipeline(t, engine, bus.Config{URL: cluster.URLs(), Replicas: 3}, relay.Options{})
		if r := p.bus.Replicas(); r != 3 {
			t.Fatalf("streams declared with %d replicas", r)
		}
		calls, handled := p.countingNotify(t)

		victim := pickVictim(t, p.bus, cluster)
		connected := p.bus.Conn().ConnectedServerName()
		before := streamLeaders(t, p.bus.JetStream())

		start := time.Now()
		var killedAt time.Duration
		chaos := make(chan struct{})
		go func() {
			defer close(chaos)
			time.Sleep(time.Second)
			victim.Kill()
			killedAt = time.Since(start)
		}()
		ids := p.createPaced(t, n, 3*time.Second)
		created := time.Since(start)
		<-chaos
		if t.Failed() {
			return
		}
		p.waitSettled(t, ids, handled, 45*time.Second)
		settled := time.Since(start)

		c := p.check(t, reg, ids, calls.Load())
		leaders := streamLeaders(t, p.bus.JetStream())
		t.Logf("killed %s (leading EVENTS and the notify consumer; leaders were %s; the client stayed connected to %s, now %s) at %s; "+
			"%d requests created in %s; all settled at %s with %s dead; leaders now %s",
			victim.Name(), before, connected, p.bus.Conn().ConnectedServerName(), killedAt.Round(time.Millisecond),
			n, created.Round(time.Millisecond), settled.Round(time.Millisecond), victim.Name(), leaders)
		t.Logf("counts: %s", c)
		c.assert(t, n)

		// The dead node comes back and catches up: every replica current, and
		// nothing lost or added on the way.
		victim.Restart()
		restartedAt := time.Since(start)
		cluster.WaitHealthy(t)
		for _, name := range []string{bus.StreamJobs, bus.StreamEvents} {
			waitReplicasCurrent(t, p.bus.JetStream(), name, 30*time.Second)
		}
		if jobs, events := streamMsgs(t, p.bus, bus.StreamJobs), streamMsgs(t, p.bus, bus.StreamEvents); jobs != n || events != 2*n {
			t.Errorf("after %s's restart JOBS holds %d (want %d), EVENTS %d (want %d)", victim.Name(), jobs, n, events, 2*n)
		}
		t.Logf("%s restarted (ready at %s); every replica of JOBS and EVENTS current at %s",
			victim.Name(), restartedAt.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	})
}

// waitReplicasCurrent waits until the stream has a leader and every other
// replica is online and current.
func waitReplicasCurrent(t *testing.T, js jetstream.JetStream, stream string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err := js.Stream(ctx, stream)
		cancel()
		if err != nil {
			last = err.Error()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		ci := s.CachedInfo().Cluster
		ok := ci != nil && ci.Leader != "" && len(ci.Replicas) > 0
		var states []string
		for _, r := range ci.Replicas {
			ok = ok && r.Current && !r.Offline
			states = append(states, fmt.Sprintf("%s(current=%t offline=%t lag=%d)", r.Name, r.Current, r.Offline, r.Lag))
		}
		if ok {
			return
		}
		last = fmt.Sprintf("leader %q, replicas %v", ci.Leader, states)
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%s: replicas not current after %s: %s", stream, timeout, last)
}

// pickVictim chooses the node to kill and prepares it: a node the client
// is not connected to (so its connection survives and only leadership
// moves), leading the EVENTS stream and the notify consumer (so the relay's
// event publishes and the consumer's pull request are both cut off). The
// leaders are moved there with a stepdown that names the preferred server.
func pickVictim(t *testing.T, b *bus.Bus, c *natstest.Cluster) *natstest.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := b.JetStream()
	connected := b.Conn().ConnectedServerName()
	var cons jetstream.Consumer
	for { // Consume declares the consumer in its own goroutine
		var err error
		if cons, err = js.Consumer(ctx, bus.StreamEvents, notify.Consumer); err == nil {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("consumer %s: %v", notify.Consumer, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stream, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	victim := c.Server(stream.CachedInfo().Cluster.Leader)
	if victim == nil || victim.Name() == connected {
		for _, s := range c.Servers {
			if s.Name() != connected {
				victim = s
				break
			}
		}
	}
	moveLeader(t, ctx, b.Conn(), "$JS.API.STREAM.LEADER.STEPDOWN."+bus.StreamEvents, victim.Name(), func() (string, error) {
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		info, err := stream.Info(ictx)
		if err != nil {
			return "", err
		}
		if info.Cluster == nil {
			return "", errors.New("no cluster information yet")
		}
		return info.Cluster.Leader, nil
	})
	moveLeader(t, ctx, b.Conn(), "$JS.API.CONSUMER.LEADER.STEPDOWN."+bus.StreamEvents+"."+notify.Consumer, victim.Name(), func() (string, error) {
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		info, err := cons.Info(ictx)
		if err != nil {
			return "", err
		}
		if info.Cluster == nil { // mid-election the answer may carry none
			return "", errors.New("no cluster information yet")
		}
		return info.Cluster.Leader, nil
	})
	return victim
}

// moveLeader asks the group's leader to step down in favour of to, unless
// to leads already, and waits until it does. leader must not block long:
// during an election nobody answers.
func moveLeader(t *testing.T, ctx context.Context, nc *nats.Conn, subject, to string, leader func() (string, error)) {
	t.Helper()
	if l, err := leader(); err == nil && l == to {
		return
	}
	req := fmt.Sprintf(`{"placement":{"preferred":%q}}`, to)
	for {
		// Only the leader answers; mid-election nobody does, so ask again.
		_, reqErr := nc.Request(subject, []byte(req), 2*time.Second)
		for range 40 {
			if l, err := leader(); err == nil && l == to {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		if ctx.Err() != nil {
			l, err := leader()
			t.Fatalf("%s: leader still %q (%v; last request: %v), want %s", subject, l, err, reqErr, to)
		}
	}
}

func streamLeaders(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	var out []string
	for _, name := range []string{bus.StreamJobs, bus.StreamEvents} {
		s, err := js.Stream(context.Background(), name)
		if err != nil {
			out = append(out, name+"=?")
			continue
		}
		out = append(out, name+"="+s.CachedInfo().Cluster.Leader)
	}
	return strings.Join(out, " ")
}

// countingNotify runs the notify consumer and counts the deliveries handed
// to its handler and those it applied.
func (p *pipeline) countingNotify(t *testing.T) (calls, ok *atomic.Int64) {
	calls, ok = new(atomic.Int64), new(atomic.Int64)
	p.consumeNotify(t, func(next bus.BatchHandler) bus.BatchHandler {
		return func(ctx context.Context, ds []bus.Delivery) ([]error, error) {
			calls.Add(int64(len(ds)))
			results, err := next(ctx, ds)
			if err == nil {
				for _, r := range results {
					if r == nil {
						ok.Add(1)
					}
				}
			}
			return results, err
		}
	})
	return calls, ok
}

// createPaced creates n requests at a steady pace over d, each in its own
// goroutine started on time whatever the earlier ones are doing, and returns
// their ids once all are committed.
func (p *pipeline) createPaced(t *testing.T, n int, d time.Duration) []string {
	t.Helper()
	ids := make([]string, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		if wait := time.Until(start.Add(d * time.Duration(i) / time.Duration(n))); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.intake.Create(context.Background(), p.owner, submission(i), "")
			if err != nil {
				t.Errorf("create %d: %v", i, err)
				return
			}
			ids[i] = c.Request.ID
		}()
	}
	wg.Wait()
	return ids
}

// waitSettled waits until the notify handler has succeeded once per
// request and the outbox is empty, then until every request has its
// notification. Counting notifications costs a query per request, so it is
// polled only at the end, and slowly.
func (p *pipeline) waitSettled(t *testing.T, ids []string, handled *atomic.Int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for handled.Load() < int64(len(ids)) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: the notify handler succeeded %d times for %d requests; %s", handled.Load(), len(ids), p.state())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		n, _, err := p.store.OutboxBacklog(context.Background())
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for an empty outbox: %s", p.state())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		_, missing, _ := p.countNotifications(t, ids)
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %d of %d requests without a notification", missing, len(ids))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// state describes where the pipeline stands, for a timeout's message.
func (p *pipeline) state() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var b strings.Builder
	n, oldest, err := p.store.OutboxBacklog(ctx)
	fmt.Fprintf(&b, "outbox backlog %d (oldest %s, err %v)", n, oldest.Format(time.RFC3339Nano), err)
	js := p.bus.JetStream()
	for _, name := range []string{bus.StreamJobs, bus.StreamEvents} {
		if s, err := js.Stream(ctx, name); err != nil {
			fmt.Fprintf(&b, "; %s: %v", name, err)
		} else {
			i := s.CachedInfo()
			fmt.Fprintf(&b, "; %s msgs=%d last_seq=%d", name, i.State.Msgs, i.State.LastSeq)
			if i.Cluster != nil {
				fmt.Fprintf(&b, " leader=%s", i.Cluster.Leader)
			}
		}
	}
	if c, err := js.Consumer(ctx, bus.StreamEvents, notify.Consumer); err != nil {
		fmt.Fprintf(&b, "; consumer %s: %v", notify.Consumer, err)
	} else {
		i := c.CachedInfo()
		fmt.Fprintf(&b, "; consumer %s pending=%d ack_pending=%d redelivered=%d waiting=%d delivered=%d ack_floor=%d",
			notify.Consumer, i.NumPending, i.NumAckPending, i.NumRedelivered, i.NumWaiting, i.Delivered.Stream, i.AckFloor.Stream)
		if i.Cluster != nil {
			fmt.Fprintf(&b, " leader=%s", i.Cluster.Leader)
		}
	}
	fmt.Fprintf(&b, "; connected to %s", p.bus.Conn().ConnectedServerName())
	return b.String()
}

// counts are what a run left behind.
type counts struct {
	requests, notifications, missing, doubled int
	backlog                                   int
	jobs, events                              uint64 // messages in the streams
	handled                                   int64  // notify handler calls
	redeliveries                              float64
	relayed                                   float64 // rows published and confirmed
	republished                               map[string]float64
	duplicates, publishErrors                 float64 // broker answers to publishes
	deadLetters                               int
}

func (p *pipeline) check(t *testing.T, reg *prometheus.Registry, ids []string, handled int64) counts {
	t.Helper()
	c := counts{requests: len(ids), handled: handled}
	c.notifications, c.missing, c.doubled = p.countNotifications(t, ids)
	c.backlog, _, _ = p.store.OutboxBacklog(context.Background())
	c.jobs = streamMsgs(t, p.bus, bus.StreamJobs)
	c.events = streamMsgs(t, p.bus, bus.StreamEvents)
	letters, err := p.dead.List(context.Background(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	c.deadLetters = len(letters)
	c.redeliveries = metricSum(t, reg, "yolda_bus_redeliveries_total", nil)
	c.relayed = metricSum(t, reg, "yolda_relay_published_total", nil)
	c.republished = metricByLabel(t, reg, "yolda_relay_republished_total", "reason")
	c.duplicates = metricSum(t, reg, "yolda_bus_published_total", map[string]string{"result": "duplicate"})
	c.publishErrors = metricSum(t, reg, "yolda_bus_published_total", map[string]string{"result": "error"})
	return c
}

func (c counts) String() string {
	return fmt.Sprintf("requests=%d notifications=%d missing=%d doubled=%d | outbox rows relayed=%.0f backlog=%d | "+
		"JOBS=%d EVENTS=%d | notify handler calls=%d redeliveries=%.0f dead letters=%d | "+
		"republished=%v broker-dropped duplicates=%.0f publish errors=%.0f",
		c.requests, c.notifications, c.missing, c.doubled, c.relayed, c.backlog,
		c.jobs, c.events, c.handled, c.redeliveries, c.deadLetters,
		formatByLabel(c.republished), c.duplicates, c.publishErrors)
}

// assert: 0 rows lost, 0 effects duplicated. Each request left three
// outbox rows: its dispatch job, request.created and
// request.insurance_checked (no insurer is configured: manual review).
func (c counts) assert(t *testing.T, n int) {
	t.Helper()
	if c.notifications != n || c.missing != 0 || c.doubled != 0 {
		t.Errorf("notifications: %d for %d requests, %d missing, %d doubled", c.notifications, n, c.missing, c.doubled)
	}
	if c.backlog != 0 {
		t.Errorf("outbox backlog %d, want 0", c.backlog)
	}
	if c.jobs != uint64(n) {
		t.Errorf("JOBS holds %d messages, want %d", c.jobs, n)
	}
	if c.events != uint64(2*n) {
		t.Errorf("EVENTS holds %d messages, want %d", c.events, 2*n)
	}
	if c.relayed < float64(3*n) {
		t.Errorf("relay had %.0f rows confirmed, want at least %d", c.relayed, 3*n)
	}
	if c.deadLetters != 0 {
		t.Errorf("%d dead letters", c.deadLetters)
	}
}

// metricSum adds up the series of a counter or gauge whose labels include
// labels.
func metricSum(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, err := telemetry.Sum(reg, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// metricByLabel is a counter's value per value of one label.
func metricByLabel(t *testing.T, reg *prometheus.Registry, name, label string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func formatByLabel(m map[string]float64) string {
	if len(m) == 0 {
		return "{}"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%.0f", k, m[k])
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// tailLogger keeps the last lines logged at info and above, and prints
// them if the test fails.
func tailLogger(t *testing.T) *slog.Logger {
	tail := &logTail{max: 300}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last %d log lines of the bus and relay:\n%s", tail.max, tail.String())
		}
	})
	return slog.New(slog.NewTextHandler(tail, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type logTail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimSuffix(string(p), "\n"))
	if len(l.lines) > 2*l.max {
		l.lines = append(l.lines[:0], l.lines[len(l.lines)-l.max:]...)
	}
	return len(p), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	if len(lines) > l.max {
		lines = lines[len(lines)-l.max:]
	}
	return strings.Join(lines, "\n")
}
