// Package config is Yolda's one configuration struct: every setting, its
// environment variable, its default, and its validation. Flags of the same
// names override the environment; `yolda serve --help` lists them all.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of a Yolda process.
type Config struct {
	HTTPAddr     string
	DataDir      string
	DatabaseURL  string
	NATSURL      string
	RedisURL     string
	WarehouseURL string
	JWTSecret    string
	InsurersFile string
	Roles        string

	// PprofAddr, when set, serves net/http/pprof there (keep it on
	// loopback: profiles reveal internals).
	PprofAddr string

	LogLevel  string
	LogFormat string

	TokenTTL        time.Duration
	ShutdownTimeout time.Duration
	MaxBodyBytes    int64
	MaxInFlight     int
	UserRate        float64
	UserBurst       int
	IPRate          float64
	IPBurst         int
	TrustedProxies  string

	NATSCredsFile     string
	NATSTLSCAFile     string
	NATSTLSCertFile   string
	NATSTLSKeyFile    string
	NATSReplicas      int
	EventsMaxAge      time.Duration
	DuplicateWindow   time.Duration
	RepublishWindow   time.Duration
	OutboxRetention   time.Duration
	SweepInterval     time.Duration
	WorkerConcurrency int

	IntakeBatchMax   int
	IntakeWriters    int
	IntakeBatchWait  time.Duration
	IntakeQueueLimit int

	// PasswordHashConcurrency bounds password hashes running at once
	// (each holds the argon2id memory, 19 MiB); 0 derives it from
	// GOMAXPROCS and a 256 MiB budget.
	PasswordHashConcurrency int
	// AuditRetention is how long the audit trail is kept.
	AuditRetention time.Duration
}

// Defaults returns the embedded-laptop defaults.
func Defaults() Config {
	return Config{
		HTTPAddr:          "127.0.0.1:8080",
		DataDir:           "./yolda-data",
		Roles:             "all",
		LogLevel:          "info",
		LogFormat:         "json",
		TokenTTL:          time.Hour,
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
		OutboxRetention:   time.Hour,
		SweepInterval:     10 * time.Second,
		WorkerConcurrency: 8,
		IntakeBatchMax:    128,
		IntakeWriters:     0, // per engine: 1 for SQLite, 2 for PostgreSQL
		IntakeBatchWait:   0,
		IntakeQueueLimit:  8192,
		AuditRetention:    400 * 24 * time.Hour,
	}
}

// EnvName is the environment variable of a flag name: http-addr ->
// YOLDA_HTTP_ADDR.
func EnvName(flagName string) string {
	return "YOLDA_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Register declares every setting on fs, with defaults taken from the
// environment (getenv) over the built-in defaults. Parsing fs then applies
// flags over both.
func (c *Config) Register(fs *flag.FlagSet, getenv func(string) string) error {
	var errs []error
	str := func(p *string, name, usage string) {
		if v := getenv(EnvName(name)); v != "" {
			*p = v
		}
		fs.StringVar(p, name, *p, usage+" ($"+EnvName(name)+")")
	}
	dur := func(p *time.Duration, name, usage string) {
		if v := getenv(EnvName(name)); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", EnvName(name), err))
			}
			*p = d
		}
		fs.DurationVar(p, name, *p, usage+" ($"+EnvName(name)+")")
	}
	integer := func(p *int, name, usage string) {
		if v := getenv(EnvName(name)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", EnvName(name), err))
			}
			*p = n
		}
		fs.IntVar(p, name, *p, usage+" ($"+EnvName(name)+")")
	}
	float := func(p *float64, name, usage string) {
		if v := getenv(EnvName(name)); v != "" {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", EnvName(name), err))
			}
			*p = n
		}
		fs.Float64Var(p, name, *p, usage+" ($"+EnvName(name)+")")
	}
	str(&c.HTTPAddr, "http-addr", "where the API, the WebSocket and the panel listen")
	str(&c.DataDir, "data-dir", "files of the embedded stores")
	str(&c.DatabaseURL, "database-url", "operational database: empty for SQLite in the data dir, or postgres://...")
	str(&c.NATSURL, "nats-url", "broker: empty for embedded JetStream, or nats://host:4222[,nats://...]")
	str(&c.NATSCredsFile, "nats-creds-file", "credentials file for an external NATS")
	str(&c.NATSTLSCAFile, "nats-tls-ca-file", "CA bundle that signs the NATS servers' certificates")
	str(&c.NATSTLSCertFile, "nats-tls-cert-file", "client certificate for NATS (mutual TLS)")
	str(&c.NATSTLSKeyFile, "nats-tls-key-file", "client key for NATS (mutual TLS)")
	integer(&c.NATSReplicas, "nats-replicas", "stream replicas (0: 1 embedded, 3 in a cluster)")
	dur(&c.EventsMaxAge, "events-max-age", "how long the EVENTS stream keeps events")
	dur(&c.DuplicateWindow, "nats-duplicate-window", "how long the streams remember a message id to drop a second copy")
	dur(&c.RepublishWindow, "relay-republish-window", "how far back the relay publishes again when the broker may have lost its unflushed tail")
	dur(&c.OutboxRetention, "outbox-retention", "how long sent outbox rows are kept")
	dur(&c.SweepInterval, "sweep-interval", "how often the sweeper looks for stuck requests")
	integer(&c.WorkerConcurrency, "worker-concurrency", "handlers in flight per consumer in this process")
	str(&c.RedisURL, "redis-url", "cache and positions: empty for in-process, or redis://...")
	str(&c.WarehouseURL, "warehouse-url", "reporting warehouse: empty for DuckDB in the data dir")
	str(&c.JWTSecret, "jwt-secret", "HS256 signing secret, at least 32 bytes (default: generated once into the data dir)")
	str(&c.InsurersFile, "insurers-file", "YAML list of insurers")
	str(&c.Roles, "roles", "comma-separated roles this process runs, or all")
	str(&c.PprofAddr, "pprof-addr", "serve Go profiles (net/http/pprof) on this address; empty: off")
	str(&c.LogLevel, "log-level", "debug, info, warn or error")
	str(&c.LogFormat, "log-format", "json or text")
	dur(&c.TokenTTL, "token-ttl", "lifetime of an access token")
	dur(&c.ShutdownTimeout, "shutdown-timeout", "how long shutdown waits for in-flight work")
	if v := getenv(EnvName("max-body-bytes")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvName("max-body-bytes"), err))
		}
		c.MaxBodyBytes = n
	}
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", c.MaxBodyBytes, "largest request body accepted ($YOLDA_MAX_BODY_BYTES)")
	integer(&c.MaxInFlight, "max-in-flight", "concurrent HTTP requests before answering 503 (0: no cap)")
	float(&c.UserRate, "rate-limit-user", "requests per second per authenticated identity (0: off)")
	integer(&c.UserBurst, "rate-limit-user-burst", "burst per authenticated identity")
	float(&c.IPRate, "rate-limit-ip", "login attempts per second per client address (0: off)")
	integer(&c.IPBurst, "rate-limit-ip-burst", "login burst per client address")
	str(&c.TrustedProxies, "trusted-proxies", "comma-separated CIDRs allowed to set X-Forwarded-For")
	integer(&c.IntakeBatchMax, "intake-batch-max", "requests committed together at most (1: one transaction each)")
	integer(&c.IntakeWriters, "intake-writers", "intake transactions in flight at once (0: per engine)")
	dur(&c.IntakeBatchWait, "intake-batch-wait", "how long intake waits to fill a batch (0: commit what has queued)")
	integer(&c.IntakeQueueLimit, "intake-queue", "requests waiting for a commit before answering 503")
	integer(&c.PasswordHashConcurrency, "password-hash-concurrency", "password hashes at once, 19 MiB each (0: one per CPU within 256 MiB)")
	dur(&c.AuditRetention, "audit-retention", "how long the audit trail of security events is kept")
	return errors.Join(errs...)
}

// Validate checks the settings that can be checked without connecting.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("http-addr %q: %w", c.HTTPAddr, err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir must not be empty"))
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		errs = append(errs, fmt.Errorf("database-url: want postgres://..., got scheme of %q", redact(c.DatabaseURL)))
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		errs = append(errs, errors.New("jwt-secret must be at least 32 bytes"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("log-format %q: want json or text", c.LogFormat))
	}
	if c.TokenTTL < time.Minute || c.TokenTTL > 24*time.Hour {
		errs = append(errs, errors.New("token-ttl must be between 1m and 24h"))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, errors.New("max-body-bytes must be at least 1024"))
	}
	if c.IntakeBatchMax < 1 || c.IntakeBatchMax > 1000 {
		errs = append(errs, errors.New("intake-batch-max must be 1-1000"))
	}
	if c.IntakeWriters < 0 || c.IntakeWriters > 64 {
		errs = append(errs, errors.New("intake-writers must be 0-64"))
	}
	if c.RepublishWindow <= 0 || c.RepublishWindow > c.DuplicateWindow {
		errs = append(errs, errors.New("relay-republish-window must be positive and at most nats-duplicate-window, so the broker drops what it still has"))
	}
	if c.OutboxRetention <= c.RepublishWindow {
		errs = append(errs, errors.New("outbox-retention must exceed relay-republish-window"))
	}
	if c.WorkerConcurrency < 1 || c.WorkerConcurrency > 1024 {
		errs = append(errs, errors.New("worker-concurrency must be 1-1024"))
	}
	if c.PasswordHashConcurrency < 0 || c.PasswordHashConcurrency > 1024 {
		errs = append(errs, errors.New("password-hash-concurrency must be 0-1024"))
	}
	if c.AuditRetention < 24*time.Hour {
		errs = append(errs, errors.New("audit-retention must be at least 24h"))
	}
	if _, err := c.ProxyNets(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ProxyNets parses TrustedProxies.
func (c *Config) ProxyNets() ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, part := range strings.Split(c.TrustedProxies, ",") {
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

// DatabasePath is the SQLite file used when no database URL is set.
func (c *Config) DatabasePath() string { return filepath.Join(c.DataDir, "yolda.db") }

// Masked returns the settings as key/value pairs for the start-up log,
// with secrets and URL passwords hidden.
func (c *Config) Masked() []any {
	secret := ""
	if c.JWTSecret != "" {
		secret = "***"
	}
	return []any{
		"http_addr", c.HTTPAddr, "data_dir", c.DataDir,
		"database_url", redact(c.DatabaseURL), "nats_url", redact(c.NATSURL),
		"redis_url", redact(c.RedisURL), "warehouse_url", redact(c.WarehouseURL),
		"jwt_secret", secret, "insurers_file", c.InsurersFile, "roles", c.Roles,
		"intake_batch_max", c.IntakeBatchMax, "intake_writers", c.IntakeWriters,
		"intake_batch_wait", c.IntakeBatchWait.String(),
		"rate_limit_user", c.UserRate, "rate_limit_ip", c.IPRate, "max_in_flight", c.MaxInFlight,
		"password_hash_concurrency", c.PasswordHashConcurrency, "audit_retention", c.AuditRetention.String(),
	}
}

// redact hides the password of every URL in a comma-separated list.
func redact(raw string) string {
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
