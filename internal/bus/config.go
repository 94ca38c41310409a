package bus

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of [Config]. Each stream is bounded by age, count and size;
// what happens at a limit is the stream's policy (see streamConfigs and
// docs/operations.md, "Bounded streams").
const (
	DefaultEventsMaxAge   = 7 * 24 * time.Hour
	DefaultEventsMaxBytes = 8 << 30 // 8 GiB
	DefaultEventsMaxMsgs  = 20_000_000
	DefaultJobsMaxAge     = 24 * time.Hour
	DefaultJobsMaxBytes   = 1 << 30 // 1 GiB
	DefaultJobsMaxMsgs    = 1_000_000
	// DefaultDuplicateWindow must cover how far back the relay publishes
	// rows again (relay.DefaultRepublishWindow, 2m30s, JetStream's 2m
	// sync interval plus a margin), so that the broker drops the copies it
	// still has. 5 minutes leaves room for both.
	DefaultDuplicateWindow = 5 * time.Minute
	DefaultName            = "yolda"
	// DefaultHealthTTL is how long the health board keeps a process's last
	// snapshot (see [HealthBoard]).
	DefaultHealthTTL = 10 * time.Second
)

// Config chooses and tunes the broker. The zero value (plus a DataDir) runs
// an embedded broker.
type Config struct {
	// URL is empty for an embedded broker, or a comma-separated list of
	// servers of one cluster: nats://a:4222,nats://b:4222.
	URL string
	// DataDir holds the embedded broker's files (under DataDir/nats).
	// Unused with an external broker.
	DataDir string

	// CredsFile is a NATS credentials file (JWT and seed). External only.
	CredsFile string
	// TLSCAFile, TLSCertFile and TLSKeyFile set up TLS to an external
	// broker: the CA to trust, and a client certificate for mutual TLS.
	TLSCAFile   string
	TLSCertFile string
	TLSKeyFile  string

	// Replicas of each stream: 0 picks 1 for an embedded broker or a single
	// external server, and 3 when the external server is part of a cluster.
	Replicas int
	// EventsMaxAge is how long EVENTS keeps a message (0: 7 days).
	EventsMaxAge time.Duration
	// EventsMaxBytes and EventsMaxMsgs bound EVENTS by size and count (0:
	// 8 GiB, 20 million). At a limit the oldest events go first.
	EventsMaxBytes int64
	EventsMaxMsgs  int64
	// JobsMaxAge, JobsMaxBytes and JobsMaxMsgs bound JOBS (0: 24 hours,
	// 1 GiB, 1 million). At the size or count limit the broker refuses new
	// jobs, which stay in the outbox; past the age a job is dropped and
	// the sweeper commits it again.
	JobsMaxAge   time.Duration
	JobsMaxBytes int64
	JobsMaxMsgs  int64
	// DuplicateWindow is how long the streams remember a Nats-Msg-Id to drop
	// a re-published copy (0: 5 minutes). It must cover the relay's
	// republish window.
	DuplicateWindow time.Duration
	// HealthTTL is how long the health board keeps a process's last
	// snapshot (0: 10 s). Every process of a deployment must agree: the
	// bucket has one TTL, which the last to start sets.
	HealthTTL time.Duration
	// Name identifies this process to the broker (and names the embedded
	// server); "yolda" if empty.
	Name string

	// Registerer receives the bus's metrics; nil keeps them unregistered.
	// Several buses may share one Registerer: they share the collectors.
	Registerer prometheus.Registerer
}

// Embedded reports whether the config asks for an in-process broker.
func (c Config) Embedded() bool { return strings.TrimSpace(c.URL) == "" }

func (c Config) withDefaults() Config {
	if c.EventsMaxAge == 0 {
		c.EventsMaxAge = DefaultEventsMaxAge
	}
	if c.EventsMaxBytes == 0 {
		c.EventsMaxBytes = DefaultEventsMaxBytes
	}
	if c.EventsMaxMsgs == 0 {
		c.EventsMaxMsgs = DefaultEventsMaxMsgs
	}
	if c.JobsMaxAge == 0 {
		c.JobsMaxAge = DefaultJobsMaxAge
	}
	if c.JobsMaxBytes == 0 {
		c.JobsMaxBytes = DefaultJobsMaxBytes
	}
	if c.JobsMaxMsgs == 0 {
		c.JobsMaxMsgs = DefaultJobsMaxMsgs
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.HealthTTL == 0 {
		c.HealthTTL = DefaultHealthTTL
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Replicas == 0 && c.Embedded() {
		c.Replicas = 1
	}
	return c
}

// Validate checks what can be checked without connecting.
func (c Config) Validate() error {
	var errs []error
	if c.Embedded() {
		if c.DataDir == "" {
			errs = append(errs, errors.New("data dir is required for the embedded broker"))
		}
		if c.Replicas > 1 {
			errs = append(errs, fmt.Errorf("replicas %d: the embedded broker has one node", c.Replicas))
		}
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas %d: want 0-5", c.Replicas))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("tls cert and key files go together"))
	}
	if c.EventsMaxAge < 0 {
		errs = append(errs, errors.New("events max age must not be negative"))
	}
	if c.DuplicateWindow < 0 {
		errs = append(errs, errors.New("duplicate window must not be negative"))
	}
	if c.HealthTTL != 0 && c.HealthTTL < time.Second {
		// Processes post every HealthTTL/5: shorter would be a flood.
		errs = append(errs, errors.New("health ttl must be at least 1s"))
	}
	if c.EventsMaxBytes < 0 || c.EventsMaxMsgs < 0 || c.JobsMaxAge < 0 || c.JobsMaxBytes < 0 || c.JobsMaxMsgs < 0 {
		// Streams are bounded by design: there is no "unlimited".
		errs = append(errs, errors.New("stream limits must not be negative"))
	}
	if c.JobsMaxAge > 0 && c.DuplicateWindow > c.JobsMaxAge {
		errs = append(errs, errors.New("duplicate window must not exceed jobs max age"))
	}
	if c.EventsMaxAge > 0 && c.DuplicateWindow > c.EventsMaxAge {
		// The server refuses this; say so before connecting.
		errs = append(errs, errors.New("duplicate window must not exceed events max age"))
	}
	return errors.Join(errs...)
}
