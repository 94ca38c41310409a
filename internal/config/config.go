// Package config is Yolda's one configuration struct: every setting, its
// environment variable, its default, and its validation. Flags of the same
// names override the environment; `yolda serve --help` lists them all.
// It reads and checks values; it does not connect to anything.
package config

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/ratelimit"
)

// Config is every setting of a Yolda process. Each field is one setting of
// settings(), with a flag and an environment variable.
type Config struct {
	// HTTPAddr is host:port of the API listener: the API, and the probes
	// (never the metrics: see OpsAddr).
	HTTPAddr string
	// DataDir holds the embedded stores (SQLite file, JetStream store) and
	// the generated JWT secret. A relative path is relative to the current
	// directory of the process.
	DataDir string
	// DatabaseURL is the operational database: empty for SQLite in
	// DataDir, or a postgres:// URL.
	DatabaseURL string
	// NATSURL is the broker: empty for JetStream embedded in the process,
	// or comma-separated nats:// (tls://) URLs of a cluster.
	NATSURL string
	// RedisURL is the shared driver position index, rate limits and
	// hot-read cache: empty keeps them in the process.
	RedisURL string
	// CacheTTL is the longest a hot-read cache entry is served (0: the
	// cache is off); changes invalidate entries long before.
	CacheTTL time.Duration
	// WarehouseURL is the reporting warehouse: empty for a DuckDB file in
	// DataDir (served by the one process that runs the warehouse role), or
	// a postgres:// URL of a database apart from the operational one.
	WarehouseURL string
	// ReportsURL is where an api process without the warehouse role
	// forwards /v1/reports/... (the warehouse role's http-addr, e.g.
	// http://10.0.0.5:8081) when the warehouse is DuckDB; empty: such a
	// process answers reports with 503 (or put the route in the proxy,
	// docs/reports.md). With a PostgreSQL warehouse the api reads it
	// itself.
	ReportsURL string
	// JWTSecret signs access tokens (HS256, 32 bytes or more). Empty: a
	// secret generated once into DataDir, which then must be shared by
	// every API process.
	JWTSecret string
	// InsurersFile is a YAML list of insurers; empty: none configured.
	InsurersFile string
	// Roles is the comma-separated roles this process runs, or all.
	Roles string

	// PprofAddr is where net/http/pprof is served; empty: off. Keep it on
	// loopback: profiles reveal internals (Warnings says when it is not).
	PprofAddr string
	// OpsAddr is the operations listener: /metrics, /healthz, /readyz.
	// Loopback by default, so that metrics never face the public; empty
	// turns it off. Every process serves it, whatever its roles.
	OpsAddr string

	// LogLevel is debug, info, warn or error.
	LogLevel string
	// LogFormat is json or text (both on stderr).
	LogFormat string

	// TokenTTL is the lifetime of an access token.
	TokenTTL time.Duration
	// TrackingLinkTTL is the lifetime of a customer's tracking link
	// (POST /v1/requests/{id}/tracking-link).
	TrackingLinkTTL time.Duration
	// ShutdownTimeout bounds how long a SIGTERM waits for in-flight work.
	ShutdownTimeout time.Duration
	// MaxBodyBytes is the largest request body accepted (413 past it).
	MaxBodyBytes int64
	// MaxInFlight caps concurrent HTTP requests before 503 (0: no cap).
	MaxInFlight int
	// UserRate is requests per second per authenticated identity on the
	// routes of the default class; 0 turns every per-identity limit off.
	UserRate float64
	// UserBurst is the burst allowed per authenticated identity.
	UserBurst int
	// IPRate is login attempts per second per client address; 0 turns
	// every per-address limit off.
	IPRate float64
	// IPBurst is the login burst allowed per client address.
	IPBurst int
	// RateLimits changes the budgets of the route classes
	// (CLASS.WHO=RATE/s:BURST,..., CLASS.fail=open|closed, or off);
	// docs/security.md lists the classes and their defaults.
	RateLimits string
	// TrustedProxies is comma-separated CIDRs whose X-Forwarded-For is
	// believed; they are also spared the per-address connection cap.
	TrustedProxies string
	// BodyReadTimeout bounds the reading of one request body (408 past
	// it), apart from and much tighter than the connection's timeouts.
	BodyReadTimeout time.Duration
	// MaxConnsPerIP caps the connections one client address keeps open on
	// the API listener (0: no cap). Trusted proxies are exempt.
	MaxConnsPerIP int

	// NATSCredsFile is a credentials file for an external NATS.
	NATSCredsFile string
	// NATSTLSCAFile is the CA bundle that signs the NATS servers'
	// certificates.
	NATSTLSCAFile string
	// NATSTLSCertFile is the client certificate for NATS (mutual TLS).
	NATSTLSCertFile string
	// NATSTLSKeyFile is the client key for NATS (mutual TLS).
	NATSTLSKeyFile string
	// NATSReplicas is the replicas of every stream (0: 1 embedded, 3 in a
	// cluster).
	NATSReplicas int
	// EventsMaxAge is how long the EVENTS stream keeps events.
	EventsMaxAge time.Duration
	// DuplicateWindow is how long the streams remember a message id to
	// drop a second copy; it must cover RepublishWindow.
	DuplicateWindow time.Duration
	// RepublishWindow is how far back the relay publishes again when the
	// broker may have lost its unflushed tail.
	RepublishWindow time.Duration
	// OutboxRetention is how long published outbox rows are kept; it must
	// exceed RepublishWindow.
	OutboxRetention time.Duration
	// RelayBatch is how many outbox rows one relay round claims and
	// publishes.
	RelayBatch int
	// RelayWorkers is how many relay rounds run at once in this process
	// while a backlog lasts.
	RelayWorkers int
	// SweepInterval is how often the sweeper looks for stuck requests.
	SweepInterval time.Duration
	// WorkerConcurrency is the handlers (for a batching consumer: the
	// batches) in flight per consumer in this process.
	WorkerConcurrency int
	// ConsumerBatchMax caps the messages a batching consumer (notify)
	// applies in one transaction; 1 is one transaction per message.
	ConsumerBatchMax int
	// ConsumerBatchWait is how long a batching consumer waits to fill a
	// batch; 0 takes what is buffered, so a lone message never waits.
	ConsumerBatchWait time.Duration
	// WarehouseBatchMax caps the events the warehouse loader commits in
	// one transaction: its cost is mostly per transaction, and reports
	// are minutes-fresh, so it batches far more than other consumers.
	WarehouseBatchMax int

	// IntakeBatchMax caps the requests committed in one transaction (1:
	// one transaction each).
	IntakeBatchMax int
	// IntakeWriters is the intake transactions in flight at once (0: per
	// engine, 1 for SQLite and 2 for PostgreSQL).
	IntakeWriters int
	// IntakeBatchWait is how long intake waits to fill a batch (0: commit
	// what has queued).
	IntakeBatchWait time.Duration
	// IntakeQueueLimit is the requests waiting for a commit before intake
	// answers 503.
	IntakeQueueLimit int

	// DriverStaleAfter is how old a driver's last position may be for the
	// driver to be offered jobs.
	DriverStaleAfter time.Duration
	// ETARoadFactor multiplies the great-circle distance in the default
	// arrival estimate (roads are not straight).
	ETARoadFactor float64
	// ETASpeedKmh is the average speed of the default arrival estimate.
	ETASpeedKmh float64

	// PasswordHashConcurrency bounds the password hashes running at once
	// (each holds the argon2id memory, 19 MiB); 0 derives it from
	// GOMAXPROCS and a 256 MiB budget. Logins past it wait briefly, then
	// get 503.
	PasswordHashConcurrency int
	// AuditRetention is how long the audit trail of security events is
	// kept.
	AuditRetention time.Duration
	// OfferTimeout is how long a driver has to accept an offer.
	OfferTimeout time.Duration
	// DispatchRadiiKm are dispatch's rounds, comma-separated kilometres:
	// the k-th offer of a request goes to a driver within the k-th radius;
	// after the last round the request is unfulfilled.
	DispatchRadiiKm string
	// DispatchWait is how long a request with no free driver within the
	// widest radius waits for one before it is unfulfilled.
	DispatchWait time.Duration
	// BatchMatchThreshold is how many requests of one dispatch batch may
	// compete for the same drivers before they are matched together for
	// the minimum total ETA instead of nearest-first (0: never).
	BatchMatchThreshold int
	// OfferExpiryInterval is how often the dispatch role looks for offers
	// past their deadline (offers made in the process are looked at on
	// time besides).
	OfferExpiryInterval time.Duration

	// WSAllowedOrigins is comma-separated browser origins, besides the
	// server's own, whose pages may open GET /v1/ws: host patterns
	// (panel.example.com, *.example.com) or whole origins
	// (https://panel.example.com).
	WSAllowedOrigins string
	// WSMaxConns caps the WebSocket connections of one process.
	WSMaxConns int
	// WSPingInterval is how often a WebSocket client is pinged; one that
	// does not answer within 10 s is disconnected.
	WSPingInterval time.Duration
	// WSStatusQueue is how many status messages may wait for a slow
	// WebSocket client before it is disconnected (it resumes).
	WSStatusQueue int
	// WSTokenRecheck is how often (at a ping) an open WebSocket's token is
	// asked whether it still speaks for its account (revoked, disabled,
	// role changed: the connection is closed).
	WSTokenRecheck time.Duration
	// WSClientRate is how many messages per second one WebSocket client
	// may send (twice that in a burst); more are answered with an error
	// and dropped.
	WSClientRate float64
}

// WarehousePath is the DuckDB warehouse file in DataDir.
func (c *Config) WarehousePath() string { return filepath.Join(c.DataDir, "warehouse.duckdb") }

// Defaults returns the embedded-laptop defaults.
func Defaults() Config {
	return Config{
		HTTPAddr:          "127.0.0.1:8080",
		OpsAddr:           "127.0.0.1:8081",
		BodyReadTimeout:   5 * time.Second,
		MaxConnsPerIP:     64,
		DataDir:           "./yolda-data",
		Roles:             "all",
		LogLevel:          "info",
		LogFormat:         "json",
		TokenTTL:          time.Hour,
		TrackingLinkTTL:   2 * time.Hour,
		ShutdownTimeout:   20 * time.Second,
		MaxBodyBytes:      64 << 10,
		MaxInFlight:       4096,
		UserRate:          20,
		UserBurst:         40,
		IPRate:            5,
		IPBurst:           20,
		EventsMaxAge:      7 * 24 * time.Hour,
		DuplicateWindow:   5 * time.Minute,
		RepublishWindow:   150 * time.Second,
		RelayBatch:        2000,
		RelayWorkers:      1,
		OutboxRetention:   time.Hour,
		SweepInterval:     10 * time.Second,
		WorkerConcurrency: 8,
		ConsumerBatchMax:  256,
		WarehouseBatchMax: 2048,
		IntakeBatchMax:    128,
		IntakeWriters:     0, // per engine: 1 for SQLite, 2 for PostgreSQL
		IntakeBatchWait:   0,
		IntakeQueueLimit:  8192,
		DriverStaleAfter:  2 * time.Minute,
		CacheTTL:          30 * time.Second,
		ETARoadFactor:     1.35,
		ETASpeedKmh:       35,
		AuditRetention:    400 * 24 * time.Hour,

		OfferTimeout:        30 * time.Second,
		DispatchRadiiKm:     "5,10,20,40",
		DispatchWait:        time.Minute,
		BatchMatchThreshold: 8,
		OfferExpiryInterval: time.Second,
		WSMaxConns:          50_000,
		WSPingInterval:      25 * time.Second,
		WSStatusQueue:       256,
		WSClientRate:        20,
		WSTokenRecheck:      time.Minute,
	}
}

// EnvName is the environment variable of a flag name: http-addr ->
// YOLDA_HTTP_ADDR.
func EnvName(flagName string) string {
	return "YOLDA_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// mask says how Masked shows a setting.
type mask uint8

const (
	shown  mask = iota
	secret      // only whether it is set
	urls        // comma-separated URLs, passwords hidden
)

// setting is one field of Config: its flag name (the variable is
// EnvName(name)), its help, a pointer to the field, how Masked shows it.
type setting struct {
	name  string
	usage string
	ptr   any // *string, *int, *int64, *float64 or *time.Duration
	mask  mask
}

// settings is every field of c, once. TestEverySettingIsDeclared checks
// that none is missing.
func (c *Config) settings() []setting {
	return []setting{
		{"http-addr", "host:port of the HTTP API and probes", &c.HTTPAddr, shown},
		{"ops-addr", "operations listener: /metrics, /healthz, /readyz (keep it off the public network; empty: off)", &c.OpsAddr, shown},
		{"data-dir", "files of the embedded stores and the generated JWT secret (relative to the current directory)", &c.DataDir, shown},
		{"database-url", "operational database: empty for SQLite in the data dir, or postgres://...", &c.DatabaseURL, urls},
		{"nats-url", "broker: empty for embedded JetStream, or nats://host:4222[,nats://...]", &c.NATSURL, urls},
		{"nats-creds-file", "credentials file for an external NATS", &c.NATSCredsFile, shown},
		{"nats-tls-ca-file", "CA bundle that signs the NATS servers' certificates", &c.NATSTLSCAFile, shown},
		{"nats-tls-cert-file", "client certificate for NATS (mutual TLS)", &c.NATSTLSCertFile, shown},
		{"nats-tls-key-file", "client key for NATS (mutual TLS)", &c.NATSTLSKeyFile, shown},
		{"nats-replicas", "stream replicas (0: 1 embedded, 3 in a cluster)", &c.NATSReplicas, shown},
		{"events-max-age", "how long the EVENTS stream keeps events", &c.EventsMaxAge, shown},
		{"nats-duplicate-window", "how long the streams remember a message id to drop a second copy", &c.DuplicateWindow, shown},
		{"relay-republish-window", "how far back the relay publishes again when the broker may have lost its unflushed tail", &c.RepublishWindow, shown},
		{"outbox-retention", "how long sent outbox rows are kept", &c.OutboxRetention, shown},
		{"relay-batch", "outbox rows one relay round claims and publishes", &c.RelayBatch, shown},
		{"relay-workers", "relay rounds at once in this process while a backlog lasts (above 1, rounds overtake each other as several relays do)", &c.RelayWorkers, shown},
		{"sweep-interval", "how often the sweeper looks for stuck requests", &c.SweepInterval, shown},
		{"worker-concurrency", "handlers (or batches) in flight per consumer in this process", &c.WorkerConcurrency, shown},
		{"consumer-batch-max", "messages a batching consumer applies in one transaction at most (1: one each)", &c.ConsumerBatchMax, shown},
		{"consumer-batch-wait", "how long a batching consumer waits to fill a batch (0: take what is buffered)", &c.ConsumerBatchWait, shown},
		{"warehouse-batch-max", "events the warehouse loader commits in one transaction at most", &c.WarehouseBatchMax, shown},
		{"redis-url", "position index, rate limits and cache: empty for in-process, or redis://...", &c.RedisURL, urls},
		{"cache-ttl", "longest a hot-read cache entry is served (0: cache off); changes invalidate at once", &c.CacheTTL, shown},
		{"warehouse-url", "reporting warehouse: empty for DuckDB in the data dir, or postgres://... (not the operational database)", &c.WarehouseURL, urls},
		{"reports-url", "where an api without the warehouse role forwards /v1/reports (http://host:port of the warehouse process)", &c.ReportsURL, urls},
		{"jwt-secret", "HS256 signing secret, at least 32 bytes (default: generated once into the data dir)", &c.JWTSecret, secret},
		{"insurers-file", "YAML list of insurers", &c.InsurersFile, shown},
		{"roles", "comma-separated roles this process runs, or all", &c.Roles, shown},
		{"pprof-addr", "serve Go profiles (net/http/pprof) on this address, loopback only; empty: off", &c.PprofAddr, shown},
		{"log-level", "debug, info, warn or error", &c.LogLevel, shown},
		{"log-format", "json or text", &c.LogFormat, shown},
		{"token-ttl", "lifetime of an access token", &c.TokenTTL, shown},
		{"tracking-link-ttl", "lifetime of a customer's tracking link", &c.TrackingLinkTTL, shown},
		{"shutdown-timeout", "how long shutdown waits for in-flight work", &c.ShutdownTimeout, shown},
		{"max-body-bytes", "largest request body accepted", &c.MaxBodyBytes, shown},
		{"max-in-flight", "concurrent HTTP requests before answering 503 (0: no cap)", &c.MaxInFlight, shown},
		{"rate-limit-user", "requests per second per identity on routes of the default class (0: every per-identity limit off)", &c.UserRate, shown},
		{"rate-limit-user-burst", "burst per authenticated identity", &c.UserBurst, shown},
		{"rate-limit-ip", "login attempts per second per client address (0: every per-address limit off)", &c.IPRate, shown},
		{"rate-limit-ip-burst", "login burst per client address", &c.IPBurst, shown},
		{"rate-limits", "budgets per route class: CLASS.WHO=RATE/s:BURST,... (WHO: a role, staff, everyone, address), CLASS.fail=open|closed, or off", &c.RateLimits, shown},
		{"trusted-proxies", "comma-separated CIDRs allowed to set X-Forwarded-For (and spared the per-address connection cap)", &c.TrustedProxies, shown},
		{"body-read-timeout", "how long one request body may take to arrive (408 past it)", &c.BodyReadTimeout, shown},
		{"max-conns-per-ip", "connections one client address may keep open (0: no cap)", &c.MaxConnsPerIP, shown},
		{"intake-batch-max", "requests committed together at most (1: one transaction each)", &c.IntakeBatchMax, shown},
		{"intake-writers", "intake transactions in flight at once (0: per engine)", &c.IntakeWriters, shown},
		{"intake-batch-wait", "how long intake waits to fill a batch (0: commit what has queued)", &c.IntakeBatchWait, shown},
		{"intake-queue", "requests waiting for a commit before answering 503", &c.IntakeQueueLimit, shown},
		{"driver-stale-after", "a driver whose last position is older is not offered jobs", &c.DriverStaleAfter, shown},
		{"eta-road-factor", "arrival estimate: great-circle distance x this factor", &c.ETARoadFactor, shown},
		{"eta-speed-kmh", "arrival estimate: average speed of a service vehicle", &c.ETASpeedKmh, shown},
		{"password-hash-concurrency", "password hashes at once, 19 MiB each (0: one per CPU within 256 MiB)", &c.PasswordHashConcurrency, shown},
		{"audit-retention", "how long the audit trail of security events is kept", &c.AuditRetention, shown},
		{"offer-timeout", "how long a driver has to accept an offer", &c.OfferTimeout, shown},
		{"dispatch-radii-km", "dispatch rounds: comma-separated radii in km, one offer per round", &c.DispatchRadiiKm, shown},
		{"dispatch-wait", "how long a request with no free driver in reach waits before it is unfulfilled", &c.DispatchWait, shown},
		{"batch-match-threshold", "requests of one dispatch batch competing for the same drivers above which they are matched together (0: never)", &c.BatchMatchThreshold, shown},
		{"offer-expiry-interval", "how often the dispatch role looks for offers past their deadline", &c.OfferExpiryInterval, shown},
		{"ws-allowed-origins", "comma-separated browser origins (host patterns such as *.example.com, or https://host) whose pages may open the WebSocket, besides the server's own", &c.WSAllowedOrigins, shown},
		{"ws-max-conns", "WebSocket connections one process holds at most (503 past it)", &c.WSMaxConns, shown},
		{"ws-ping-interval", "how often a WebSocket client is pinged (no pong within 10s: disconnected)", &c.WSPingInterval, shown},
		{"ws-status-queue", "status messages that may wait for a slow WebSocket client before it is disconnected (it resumes)", &c.WSStatusQueue, shown},
		{"ws-client-rate", "messages per second one WebSocket client may send (bursts of twice that)", &c.WSClientRate, shown},
		{"ws-token-recheck", "how often an open WebSocket's token is checked against its account (revoked or disabled: closed)", &c.WSTokenRecheck, shown},
	}
}

// Register declares every setting as a flag on fs, with defaults taken
// from the environment (getenv) over the built-in defaults. Parsing fs
// then applies flags over both.
func (c *Config) Register(fs *flag.FlagSet, getenv func(string) string) error {
	return c.register(fs, getenv, func(string) bool { return true })
}

// RegisterOnly is Register for a command that takes only some settings as
// flags (`users add`: where the store is). Every setting is still read
// from the environment.
func (c *Config) RegisterOnly(fs *flag.FlagSet, getenv func(string) string, names ...string) error {
	for _, n := range names {
		if !slices.ContainsFunc(c.settings(), func(s setting) bool { return s.name == n }) {
			return fmt.Errorf("config: no setting %q", n)
		}
	}
	return c.register(fs, getenv, func(name string) bool { return slices.Contains(names, name) })
}

func (c *Config) register(fs *flag.FlagSet, getenv func(string) string, asFlag func(string) bool) error {
	var errs []error
	for _, s := range c.settings() {
		env := EnvName(s.name)
		if v := getenv(env); v != "" {
			if err := s.set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
		}
		if asFlag(s.name) {
			s.declare(fs, s.usage+" ($"+env+")")
		}
	}
	return errors.Join(errs...)
}

// set parses v into the setting's field.
func (s setting) set(v string) error {
	switch p := s.ptr.(type) {
	case *string:
		*p = v
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		*p = n
	case *int64:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return err
		}
		*p = n
	case *float64:
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return err
		}
		*p = n
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		*p = d
	default:
		panic(fmt.Sprintf("config: setting %s has unsupported type %T", s.name, s.ptr))
	}
	return nil
}

func (s setting) declare(fs *flag.FlagSet, usage string) {
	switch p := s.ptr.(type) {
	case *string:
		fs.StringVar(p, s.name, *p, usage)
	case *int:
		fs.IntVar(p, s.name, *p, usage)
	case *int64:
		fs.Int64Var(p, s.name, *p, usage)
	case *float64:
		fs.Float64Var(p, s.name, *p, usage)
	case *time.Duration:
		fs.DurationVar(p, s.name, *p, usage)
	default:
		panic(fmt.Sprintf("config: setting %s has unsupported type %T", s.name, s.ptr))
	}
}

// Validate checks every value that can be checked without connecting, so
// that a bad setting stops a process before it opens anything.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if err := checkAddr(c.HTTPAddr); err != nil {
		bad("http-addr %q: %w", c.HTTPAddr, err)
	}
	if c.PprofAddr != "" {
		if err := checkAddr(c.PprofAddr); err != nil {
			bad("pprof-addr %q: %w", c.PprofAddr, err)
		}
	}
	if c.OpsAddr != "" {
		if err := checkAddr(c.OpsAddr); err != nil {
			bad("ops-addr %q: %w", c.OpsAddr, err)
		} else if c.OpsAddr == c.HTTPAddr && !strings.HasSuffix(c.OpsAddr, ":0") {
			bad("ops-addr must differ from http-addr: metrics stay off the API listener")
		}
	}
	if c.BodyReadTimeout < 100*time.Millisecond || c.BodyReadTimeout > 5*time.Minute {
		bad("body-read-timeout must be between 100ms and 5m")
	}
	if c.MaxConnsPerIP < 0 {
		bad("max-conns-per-ip must be 0 (no cap) or more")
	}
	if c.DataDir == "" {
		bad("data-dir must not be empty")
	}
	if err := checkURLs(c.DatabaseURL, "postgres", "postgresql"); err != nil {
		bad("database-url: %w", err)
	}
	if err := checkURLs(withDefaultScheme(c.NATSURL, "nats"), "nats", "tls", "ws", "wss"); err != nil {
		bad("nats-url: %w", err)
	}
	if err := checkURLs(c.RedisURL, "redis", "rediss", "unix"); err != nil {
		bad("redis-url: %w", err)
	}
	if err := checkURLs(c.WarehouseURL, "postgres", "postgresql"); err != nil {
		bad("warehouse-url: %w", err)
	}
	if c.WarehouseURL != "" && c.WarehouseURL == c.DatabaseURL {
		bad("warehouse-url must not be the operational database (database-url): reports must never load it")
	}
	if strings.Contains(c.ReportsURL, ",") {
		bad("reports-url: one URL")
	} else if err := checkURLs(c.ReportsURL, "http", "https"); err != nil {
		bad("reports-url: %w", err)
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		bad("jwt-secret must be at least 32 bytes")
	}
	if c.Roles == "" {
		bad("roles must not be empty (all runs every role)")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		bad("log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("log-format %q: want json or text", c.LogFormat)
	}
	if c.TokenTTL < time.Minute || c.TokenTTL > 24*time.Hour {
		bad("token-ttl must be between 1m and 24h")
	}
	if c.TrackingLinkTTL < time.Minute || c.TrackingLinkTTL > 72*time.Hour {
		bad("tracking-link-ttl must be between 1m and 72h")
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout must be positive")
	}
	if c.MaxBodyBytes < 1024 {
		bad("max-body-bytes must be at least 1024")
	}
	if c.MaxInFlight < 0 {
		bad("max-in-flight must be 0 (no cap) or more")
	}
	for _, r := range []struct {
		name  string
		rate  float64
		burst int
	}{{"rate-limit-user", c.UserRate, c.UserBurst}, {"rate-limit-ip", c.IPRate, c.IPBurst}} {
		if r.rate < 0 || math.IsNaN(r.rate) || math.IsInf(r.rate, 0) {
			bad("%s must be 0 (off) or a positive number, got %v", r.name, r.rate)
		}
		if r.burst < 1 {
			bad("%s-burst must be at least 1", r.name)
		}
	}
	if c.CacheTTL < 0 || c.CacheTTL > time.Hour {
		bad("cache-ttl must be between 0 (off) and 1h")
	}
	if err := ratelimit.CheckSpec(c.RateLimits); err != nil {
		bad("rate-limits: %w", err)
	}
	if c.PasswordHashConcurrency < 0 || c.PasswordHashConcurrency > 1024 {
		bad("password-hash-concurrency must be 0 (derived) to 1024")
	}
	if c.AuditRetention < 24*time.Hour {
		bad("audit-retention must be at least 24h")
	}
	if _, err := c.ProxyNets(); err != nil {
		errs = append(errs, err)
	}
	if (c.NATSTLSCertFile == "") != (c.NATSTLSKeyFile == "") {
		bad("nats-tls-cert-file and nats-tls-key-file go together")
	}
	if c.NATSReplicas < 0 || c.NATSReplicas > 5 {
		bad("nats-replicas must be 0-5 (JetStream allows at most 5)")
	}
	if c.EventsMaxAge <= 0 {
		bad("events-max-age must be positive")
	}
	if c.DuplicateWindow <= 0 || c.DuplicateWindow > c.EventsMaxAge {
		bad("nats-duplicate-window must be positive and at most events-max-age")
	}
	if c.RepublishWindow <= 0 || c.RepublishWindow > c.DuplicateWindow {
		bad("relay-republish-window must be positive and at most nats-duplicate-window, so the broker drops what it still has")
	}
	if c.OutboxRetention <= c.RepublishWindow {
		bad("outbox-retention must exceed relay-republish-window")
	}
	if c.SweepInterval <= 0 {
		bad("sweep-interval must be positive")
	}
	if c.RelayBatch < 1 || c.RelayBatch > 10_000 {
		bad("relay-batch must be 1-10000")
	}
	if c.RelayWorkers < 1 || c.RelayWorkers > 64 {
		bad("relay-workers must be 1-64")
	}
	if c.WorkerConcurrency < 1 || c.WorkerConcurrency > 1024 {
		bad("worker-concurrency must be 1-1024")
	}
	if c.ConsumerBatchMax < 1 || c.ConsumerBatchMax > 10_000 {
		bad("consumer-batch-max must be 1-10000")
	}
	if c.WarehouseBatchMax < 1 || c.WarehouseBatchMax > 10_000 {
		bad("warehouse-batch-max must be 1-10000")
	}
	if c.ConsumerBatchWait < 0 || c.ConsumerBatchWait > time.Second {
		bad("consumer-batch-wait must be 0-1s (a lone message waits that long)")
	}
	if c.IntakeBatchMax < 1 || c.IntakeBatchMax > 1000 {
		bad("intake-batch-max must be 1-1000")
	}
	if c.IntakeWriters < 0 || c.IntakeWriters > 64 {
		bad("intake-writers must be 0-64")
	}
	if c.IntakeBatchWait < 0 || c.IntakeBatchWait > time.Second {
		bad("intake-batch-wait must be 0-1s (every request in a batch waits that long)")
	}
	if c.IntakeQueueLimit < 1 {
		bad("intake-queue must be at least 1")
	}
	if c.DriverStaleAfter < 5*time.Second || c.DriverStaleAfter > time.Hour {
		bad("driver-stale-after must be between 5s and 1h")
	}
	if !(c.ETARoadFactor >= 1 && c.ETARoadFactor <= 5) {
		bad("eta-road-factor must be between 1 and 5")
	}
	if !(c.ETASpeedKmh > 0 && c.ETASpeedKmh <= 200) {
		bad("eta-speed-kmh must be in (0, 200]")
	}
	if c.OfferTimeout < time.Second || c.OfferTimeout > time.Hour {
		bad("offer-timeout must be between 1s and 1h")
	}
	if _, err := c.DispatchRadii(); err != nil {
		errs = append(errs, err)
	}
	if c.DispatchWait < time.Second || c.DispatchWait > 24*time.Hour {
		bad("dispatch-wait must be between 1s and 24h")
	}
	if c.BatchMatchThreshold < 0 {
		bad("batch-match-threshold must be 0 (never) or more")
	}
	if c.OfferExpiryInterval < 10*time.Millisecond || c.OfferExpiryInterval > time.Minute {
		bad("offer-expiry-interval must be between 10ms and 1m")
	}
	for _, o := range c.AllowedOrigins() {
		if _, err := path.Match(o, ""); err != nil || strings.ContainsAny(o, " /") && !strings.Contains(o, "://") {
			bad("ws-allowed-origins: %q is not a host pattern or an origin", o)
		}
	}
	if c.WSMaxConns < 1 {
		bad("ws-max-conns must be at least 1")
	}
	if c.WSPingInterval < time.Second || c.WSPingInterval > 10*time.Minute {
		bad("ws-ping-interval must be between 1s and 10m")
	}
	if c.WSStatusQueue < 8 || c.WSStatusQueue > 100_000 {
		bad("ws-status-queue must be 8-100000")
	}
	if c.WSTokenRecheck < time.Second || c.WSTokenRecheck > time.Hour {
		bad("ws-token-recheck must be between 1s and 1h")
	}
	if !(c.WSClientRate >= 1 && c.WSClientRate <= 10_000) {
		bad("ws-client-rate must be 1-10000")
	}
	return errors.Join(errs...)
}

// DispatchRadii parses DispatchRadiiKm: 1-16 radii, each in (0, 1000] km,
// none smaller than the one before.
func (c *Config) DispatchRadii() ([]float64, error) {
	var out []float64
	for part := range strings.SplitSeq(c.DispatchRadiiKm, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil || !(r > 0 && r <= 1000) {
			return nil, fmt.Errorf("dispatch-radii-km: %q is not a radius in (0, 1000] km", part)
		}
		if len(out) > 0 && r < out[len(out)-1] {
			return nil, errors.New("dispatch-radii-km: radii must not shrink (each round reaches at least as far)")
		}
		out = append(out, r)
	}
	if len(out) > 16 {
		return nil, errors.New("dispatch-radii-km: at most 16 rounds")
	}
	return out, nil
}

// Warnings are settings that are valid but probably not what was meant;
// a process logs them at start.
func (c *Config) Warnings() []string {
	var w []string
	if c.PprofAddr != "" && !loopback(c.PprofAddr) {
		w = append(w, fmt.Sprintf("pprof-addr %s is not a loopback address: profiles reveal internals to whoever reaches it", c.PprofAddr))
	}
	return w
}

// checkAddr accepts host:port with a numeric port 0-65535 (0: any free
// port); an empty host means every interface.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q: want a number 0-65535", port)
	}
	return nil
}

// loopback reports whether addr's host is a loopback address or
// localhost (an empty host is every interface, so not).
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkURLs accepts an empty string or comma-separated URLs with one of
// schemes and a host (unix: a path).
func checkURLs(raw string, schemes ...string) error {
	if raw == "" {
		return nil
	}
	for part := range strings.SplitSeq(raw, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			return fmt.Errorf("%q does not parse", Redact(part))
		}
		if !slices.Contains(schemes, u.Scheme) {
			return fmt.Errorf("want %s://..., got %q", strings.Join(schemes, ":// or "), Redact(part))
		}
		if u.Host == "" && u.Path == "" {
			return fmt.Errorf("%q names no host", Redact(part))
		}
	}
	return nil
}

// withDefaultScheme prefixes scheme:// to every comma-separated part that
// has none, as the NATS client does with host:port.
func withDefaultScheme(raw, scheme string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		if p = strings.TrimSpace(p); !strings.Contains(p, "://") {
			parts[i] = scheme + "://" + p
		}
	}
	return strings.Join(parts, ",")
}

// ProxyNets parses TrustedProxies.
func (c *Config) ProxyNets() ([]*net.IPNet, error) {
	var out []*net.IPNet
	for part := range strings.SplitSeq(c.TrustedProxies, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		_, n, err := net.ParseCIDR(part)
		if err != nil {
			return nil, fmt.Errorf("trusted-proxies: %w", err)
		}
		out = append(out, n)
	}
	return out, nil
}

// AllowedOrigins parses WSAllowedOrigins.
func (c *Config) AllowedOrigins() []string {
	var out []string
	for part := range strings.SplitSeq(c.WSAllowedOrigins, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// DatabasePath is the SQLite file used when no database URL is set.
func (c *Config) DatabasePath() string { return filepath.Join(c.DataDir, "yolda.db") }

// Masked returns every setting as key/value pairs for the start-up log
// (keys are the flag names with underscores), with secrets and URL
// passwords hidden.
func (c *Config) Masked() []any {
	var kv []any
	for _, s := range c.settings() {
		key := strings.ReplaceAll(s.name, "-", "_")
		var v any
		switch p := s.ptr.(type) {
		case *string:
			v = *p
			switch {
			case s.mask == secret && *p != "":
				v = "***"
			case s.mask == urls:
				v = Redact(*p)
			}
		case *time.Duration:
			v = p.String()
		case *int:
			v = *p
		case *int64:
			v = *p
		case *float64:
			v = *p
		}
		kv = append(kv, key, v)
	}
	return kv
}

// Redact hides the password of every URL in a comma-separated list.
func Redact(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "(unparseable)"
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
