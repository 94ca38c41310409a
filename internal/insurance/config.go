package insurance

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults of an insurer's settings, applied by Config.Default and LoadFile
// to whatever the file leaves out.
const (
	DefaultAdapter        = "rest"
	DefaultTimeout        = 2 * time.Second
	DefaultAttempts       = 3
	DefaultBaseDelay      = 100 * time.Millisecond
	DefaultMaxDelay       = 2 * time.Second
	DefaultRetryBudget    = 0.2
	DefaultFailures       = 5
	DefaultOpenFor        = 30 * time.Second
	DefaultHalfOpenProbes = 1
	DefaultBulkhead       = 16
	DefaultPatience       = 10 * time.Minute
	// DefaultArrivalSLAMinutes is the arrival time an insurer contracts
	// for when the file says nothing; the SLA report measures against it.
	DefaultArrivalSLAMinutes = 45
)

// Config is one insurer, as configured in the insurers file
// (YOLDA_INSURERS_FILE). Build it with LoadFile, or in code with Default
// then Validate.
type Config struct {
	// Code is the insurer's key in requests ("policy.insurer") and in
	// metrics: lower-case letters, digits, '_' and '-'.
	Code string
	// Name is for people (the panel); defaults to Code.
	Name string
	// Adapter names the Factory that speaks this insurer's protocol.
	Adapter string
	// BaseURL is where the insurer's API lives (http or https).
	BaseURL string
	// Timeout bounds one attempt (one HTTP call), not the whole Verify.
	Timeout time.Duration
	// Auth, if Header is set, is sent with every call.
	Auth    Auth
	Retry   Retry
	Breaker Breaker
	// Bulkhead is the most calls to this insurer in flight at once; more
	// fail at once with ErrBulkheadFull.
	Bulkhead int
	// Patience is how long a check may stay pending (insurer unreachable)
	// before the request goes to manual_review. Used by the worker.
	Patience time.Duration
	// VerifyBeforeDispatch: dispatch waits for cover (true) or starts at
	// once while the check runs (false). Used by intake and the worker.
	VerifyBeforeDispatch bool
	// ArrivalSLAMinutes is the time from request to the driver's arrival
	// the insurer contracted for; the SLA report counts arrivals within
	// it. Used by the warehouse only.
	ArrivalSLAMinutes int
}

// Auth is how a call proves who Yolda is: Header: "Scheme Value", or
// Header: "Value" without a scheme.
type Auth struct {
	Header string // e.g. "Authorization", "X-Api-Key"
	Scheme string // e.g. "Bearer"; optional
	// ValueEnv names the environment variable holding the secret; the
	// file never holds the secret itself.
	ValueEnv string
	// Value is the secret, read from ValueEnv by LoadFile.
	Value Secret
}

// Retry governs retries inside one Verify.
type Retry struct {
	// Attempts is the most tries, the first included (1: never retry).
	Attempts int
	// BaseDelay and MaxDelay bound the backoff: before retry n (0-based) the
	// client sleeps a uniformly random time in [0, min(MaxDelay, BaseDelay*2^n)].
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// Budget is the fraction of calls that may be retried, over a sliding
	// window of 10s (plus a floor of 10 retries per window, so a quiet
	// insurer can still retry): under a total outage the insurer sees at
	// most (1+Budget) times the calls, never Attempts times.
	Budget float64
}

// Breaker governs the insurer's circuit breaker.
type Breaker struct {
	// Failures is how many consecutive failed Verify calls open the
	// breaker. Failures are infrastructure failures only: timeouts,
	// unreachable, 5xx, bad payloads (and errors an adapter leaves
	// unclassified). "Not covered" and 4xx are successes; calls the caller
	// abandoned do not count.
	Failures int
	// OpenFor is how long the breaker stays open before letting probes
	// through (half-open).
	OpenFor time.Duration
	// HalfOpenProbes is how many calls may probe a half-open breaker; that
	// many successes in a row close it, one failure opens it again.
	HalfOpenProbes int
}

// Default fills every zero setting with its default and returns c.
func (c Config) Default() Config {
	def := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	defInt := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	if c.Name == "" {
		c.Name = c.Code
	}
	if c.Adapter == "" {
		c.Adapter = DefaultAdapter
	}
	def(&c.Timeout, DefaultTimeout)
	defInt(&c.Retry.Attempts, DefaultAttempts)
	def(&c.Retry.BaseDelay, DefaultBaseDelay)
	def(&c.Retry.MaxDelay, DefaultMaxDelay)
	if c.Retry.Budget == 0 {
		c.Retry.Budget = DefaultRetryBudget
	}
	defInt(&c.Breaker.Failures, DefaultFailures)
	def(&c.Breaker.OpenFor, DefaultOpenFor)
	defInt(&c.Breaker.HalfOpenProbes, DefaultHalfOpenProbes)
	defInt(&c.Bulkhead, DefaultBulkhead)
	def(&c.Patience, DefaultPatience)
	defInt(&c.ArrivalSLAMinutes, DefaultArrivalSLAMinutes)
	return c
}

var (
	codeRE   = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
	tokenRE  = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$") // RFC 9110 token
	envVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// Validate reports every invalid setting of c, one per line, each naming the
// insurer and the field as written in the insurers file.
func (c Config) Validate() error {
	name := c.Code
	if name == "" {
		name = "(no code)"
	}
	return prefixed("insurer "+name+": ", c.problems())
}

// prefixed joins errs, each line starting with prefix.
func prefixed(prefix string, errs []error) error {
	for i, err := range errs {
		errs[i] = fmt.Errorf("%s%w", prefix, err)
	}
	return errors.Join(errs...)
}

// problems lists c's invalid settings as "field: what is wrong".
func (c Config) problems() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	positive := func(field string, d, limit time.Duration) {
		if d <= 0 || d > limit {
			bad(field, "must be in (0, %s], got %s", limit, d)
		}
	}

	if !codeRE.MatchString(c.Code) {
		bad("code", "must be 1-64 of a-z, 0-9, '_', '-', got %q", c.Code)
	}
	if c.Name == "" || len(c.Name) > 200 {
		bad("name", "must be 1-200 bytes, got %d", len(c.Name))
	}
	if !codeRE.MatchString(c.Adapter) {
		bad("adapter", "must be 1-64 of a-z, 0-9, '_', '-', got %q", c.Adapter)
	}
	if u, err := url.Parse(c.BaseURL); c.BaseURL == "" {
		bad("base_url", "is required")
	} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("base_url", "must be an absolute http(s) URL, got %q", c.BaseURL)
	} else if u.User != nil {
		bad("base_url", "must not hold credentials (use auth.value_env)")
	} else if u.RawQuery != "" || u.Fragment != "" {
		bad("base_url", "must not have a query or fragment, got %q", c.BaseURL)
	}
	positive("timeout", c.Timeout, 5*time.Minute)

	a := c.Auth
	switch {
	case a.Header == "" && (a.Scheme != "" || a.ValueEnv != "" || a.Value.v != ""):
		bad("auth.header", "is required when auth is set")
	case a.Header != "":
		if !tokenRE.MatchString(a.Header) {
			bad("auth.header", "must be an HTTP header name, got %q", a.Header)
		}
		if a.Scheme != "" && !tokenRE.MatchString(a.Scheme) {
			bad("auth.scheme", "must be a single word like Bearer, got %q", a.Scheme)
		}
		if a.ValueEnv != "" && !envVarRE.MatchString(a.ValueEnv) {
			bad("auth.value_env", "must be an environment variable name, got %q", a.ValueEnv)
		}
		switch {
		case a.ValueEnv == "" && a.Value.v == "":
			bad("auth.value_env", "is required when auth is set")
		case a.Value.v == "":
			bad("auth.value_env", "environment variable %s is not set or empty", a.ValueEnv)
		case strings.ContainsAny(a.Value.v, "\r\n\x00"):
			bad("auth.value_env", "environment variable %s holds a line break or NUL", a.ValueEnv)
		}
	}

	r := c.Retry
	if r.Attempts < 1 || r.Attempts > 10 {
		bad("retry.attempts", "must be in [1, 10], got %d", r.Attempts)
	}
	positive("retry.base_delay", r.BaseDelay, time.Minute)
	positive("retry.max_delay", r.MaxDelay, 5*time.Minute)
	if r.MaxDelay < r.BaseDelay {
		bad("retry.max_delay", "must be >= retry.base_delay (%s), got %s", r.BaseDelay, r.MaxDelay)
	}
	if !(r.Budget > 0 && r.Budget <= 1) { // also rejects NaN
		bad("retry.budget", "must be in (0, 1], got %v (use retry.attempts: 1 for no retries)", r.Budget)
	}

	b := c.Breaker
	if b.Failures < 1 || b.Failures > 10000 {
		bad("breaker.failures", "must be in [1, 10000], got %d", b.Failures)
	}
	positive("breaker.open_for", b.OpenFor, 24*time.Hour)
	if b.HalfOpenProbes < 1 || b.HalfOpenProbes > 1000 {
		bad("breaker.half_open_probes", "must be in [1, 1000], got %d", b.HalfOpenProbes)
	}
	if c.Bulkhead < 1 || c.Bulkhead > 10000 {
		bad("bulkhead", "must be in [1, 10000], got %d", c.Bulkhead)
	}
	positive("patience", c.Patience, 7*24*time.Hour)
	if c.ArrivalSLAMinutes < 1 || c.ArrivalSLAMinutes > 24*60 {
		bad("arrival_sla_minutes", "must be in [1, 1440], got %d", c.ArrivalSLAMinutes)
	}

	return errs
}

// String is a one-line dump for logs, the secret masked.
func (c Config) String() string {
	auth := "none"
	if c.Auth.Header != "" {
		auth = c.Auth.Header + ": "
		if c.Auth.Scheme != "" {
			auth += c.Auth.Scheme + " "
		}
		auth += c.Auth.Value.String() + " (from $" + c.Auth.ValueEnv + ")"
	}
	return fmt.Sprintf("insurer %s (%q) adapter=%s base_url=%s timeout=%s auth=[%s] "+
		"retry=[attempts=%d base_delay=%s max_delay=%s budget=%v] "+
		"breaker=[failures=%d open_for=%s half_open_probes=%d] bulkhead=%d patience=%s verify_before_dispatch=%t arrival_sla_minutes=%d",
		c.Code, c.Name, c.Adapter, c.BaseURL, c.Timeout, auth,
		c.Retry.Attempts, c.Retry.BaseDelay, c.Retry.MaxDelay, c.Retry.Budget,
		c.Breaker.Failures, c.Breaker.OpenFor, c.Breaker.HalfOpenProbes,
		c.Bulkhead, c.Patience, c.VerifyBeforeDispatch, c.ArrivalSLAMinutes)
}

// LogValue logs c as its masked one-line dump.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Secret is a credential that does not print: fmt, slog, JSON and YAML all
// see "***". Reveal returns it for the one place that sends it.
type Secret struct{ v string }

// NewSecret wraps v.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the secret itself. Only an adapter setting a header calls it.
func (s Secret) Reveal() string { return s.v }

func (s Secret) mask() string {
	if s.v == "" {
		return ""
	}
	return "***"
}

func (s Secret) String() string               { return s.mask() }
func (s Secret) GoString() string             { return `insurance.Secret("` + s.mask() + `")` }
func (s Secret) Format(f fmt.State, _ rune)   { io.WriteString(f, s.mask()) } //nolint:errcheck
func (s Secret) LogValue() slog.Value         { return slog.StringValue(s.mask()) }
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.mask()), nil }
func (s Secret) MarshalYAML() (any, error)    { return s.mask(), nil }

// The insurers file, as written. Pointers tell "left out" (default) from
// "set to zero" (an error).
type (
	rawFile struct {
		Insurers []rawInsurer `yaml:"insurers"`
	}
	rawInsurer struct {
		Code                 string      `yaml:"code"`
		Name                 string      `yaml:"name"`
		Adapter              *string     `yaml:"adapter"`
		BaseURL              string      `yaml:"base_url"`
		Timeout              *string     `yaml:"timeout"`
		Auth                 *rawAuth    `yaml:"auth"`
		Retry                *rawRetry   `yaml:"retry"`
		Breaker              *rawBreaker `yaml:"breaker"`
		Bulkhead             *int        `yaml:"bulkhead"`
		Patience             *string     `yaml:"patience"`
		VerifyBeforeDispatch bool        `yaml:"verify_before_dispatch"`
		ArrivalSLAMinutes    *int        `yaml:"arrival_sla_minutes"`
	}
	rawAuth struct {
		Header   string `yaml:"header"`
		Scheme   string `yaml:"scheme"`
		ValueEnv string `yaml:"value_env"`
	}
	rawRetry struct {
		Attempts  *int     `yaml:"attempts"`
		BaseDelay *string  `yaml:"base_delay"`
		MaxDelay  *string  `yaml:"max_delay"`
		Budget    *float64 `yaml:"budget"`
	}
	rawBreaker struct {
		Failures       *int    `yaml:"failures"`
		OpenFor        *string `yaml:"open_for"`
		HalfOpenProbes *int    `yaml:"half_open_probes"`
	}
)

var rawTypeNames = strings.NewReplacer(
	"type insurance.rawFile", "the file's top level",
	"type insurance.rawInsurer", "an insurer",
	"type insurance.rawAuth", "auth",
	"type insurance.rawRetry", "retry",
	"type insurance.rawBreaker", "breaker",
	"insurance.rawFile", "the file's top level",
	"insurance.rawInsurer", "an insurer",
	"insurance.rawAuth", "auth",
	"insurance.rawRetry", "retry",
	"insurance.rawBreaker", "breaker",
)

// LoadFile reads the insurers file at path (YAML; JSON is valid YAML):
//
//	insurers:
//	  - code: anadolu
//	    name: Anadolu Sigorta
//	    base_url: http://127.0.0.1:9100
//	    auth: {header: Authorization, scheme: Bearer, value_env: ANADOLU_TOKEN}
//
// Unknown fields, duplicate codes and invalid settings are errors; secrets
// are read with getenv (os.Getenv if nil) from the variables the file names.
// An empty file, or an empty list, is no insurers.
func LoadFile(path string, getenv func(string) string) ([]Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("insurers file: %w", err)
	}
	cfgs, err := Parse(data, getenv)
	if err != nil {
		return nil, fmt.Errorf("insurers file %s: %w", path, err)
	}
	return cfgs, nil
}

// Parse is LoadFile on the file's content.
func Parse(data []byte, getenv func(string) string) ([]Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f rawFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		// "field retyr not found in type insurance.rawInsurer" -> "... in insurer"
		return nil, errors.New(rawTypeNames.Replace(err.Error()))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document")
	}

	var (
		cfgs []Config
		errs []error
		seen = map[string]int{}
	)
	for i, r := range f.Insurers {
		c, problems := r.config(getenv)
		problems = append(problems, c.problems()...)
		if j, dup := seen[c.Code]; dup {
			problems = append(problems, fmt.Errorf("code: %q is already used by insurers[%d]", c.Code, j))
		}
		if len(problems) > 0 {
			errs = append(errs, prefixed(fmt.Sprintf("insurers[%d] (%s): ", i, cmp.Or(r.Code, "no code")), problems))
			continue
		}
		seen[c.Code] = i
		cfgs = append(cfgs, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfgs, nil
}

// config turns what the file says into a Config: defaults, overridden by
// whatever the file sets (an explicit zero stays zero, for Validate to
// reject), and the secret read from the environment. It reports only what
// Validate cannot see: unparsable durations, left at their defaults.
func (r rawInsurer) config(getenv func(string) string) (Config, []error) {
	c := Config{Code: r.Code, Name: r.Name, VerifyBeforeDispatch: r.VerifyBeforeDispatch}.Default()
	c.BaseURL = r.BaseURL
	var errs []error
	dur := func(field string, s *string, dst *time.Duration) {
		if s == nil {
			return
		}
		d, err := time.ParseDuration(*s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: want a duration like 2s or 500ms, got %q", field, *s))
			return
		}
		*dst = d
	}
	set := func(p *int, dst *int) {
		if p != nil {
			*dst = *p
		}
	}
	if r.Adapter != nil {
		c.Adapter = *r.Adapter
	}
	dur("timeout", r.Timeout, &c.Timeout)
	if a := r.Auth; a != nil {
		c.Auth = Auth{Header: a.Header, Scheme: a.Scheme, ValueEnv: a.ValueEnv}
		if a.ValueEnv != "" {
			c.Auth.Value = NewSecret(getenv(a.ValueEnv))
		}
	}
	if rr := r.Retry; rr != nil {
		set(rr.Attempts, &c.Retry.Attempts)
		dur("retry.base_delay", rr.BaseDelay, &c.Retry.BaseDelay)
		dur("retry.max_delay", rr.MaxDelay, &c.Retry.MaxDelay)
		if rr.Budget != nil {
			c.Retry.Budget = *rr.Budget
		}
	}
	if b := r.Breaker; b != nil {
		set(b.Failures, &c.Breaker.Failures)
		dur("breaker.open_for", b.OpenFor, &c.Breaker.OpenFor)
		set(b.HalfOpenProbes, &c.Breaker.HalfOpenProbes)
	}
	set(r.Bulkhead, &c.Bulkhead)
	dur("patience", r.Patience, &c.Patience)
	set(r.ArrivalSLAMinutes, &c.ArrivalSLAMinutes)
	return c, errs
}
