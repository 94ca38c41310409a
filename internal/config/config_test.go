package config

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, env map[string]string, args ...string) (Config, error) {
	t.Helper()
	c := Defaults()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := c.Register(fs, func(k string) string { return env[k] }); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestDefaultsAreValid(t *testing.T) {
	c := Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("defaults warn: %v", w)
	}
}

func TestPrecedence(t *testing.T) {
	c, err := load(t, map[string]string{"YOLDA_HTTP_ADDR": "127.0.0.1:9000", "YOLDA_TOKEN_TTL": "2h", "YOLDA_INTAKE_BATCH_MAX": "1",
		"YOLDA_MAX_BODY_BYTES": "2048", "YOLDA_RATE_LIMIT_USER": "2.5"},
		"--token-ttl", "30m")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:9000" || c.TokenTTL != 30*time.Minute || c.IntakeBatchMax != 1 || c.DataDir != "./yolda-data" ||
		c.MaxBodyBytes != 2048 || c.UserRate != 2.5 {
		t.Errorf("env over defaults, flags over env: %+v", c)
	}
}

func TestValidate(t *testing.T) {
	for env, want := range map[string]string{
		"YOLDA_DATABASE_URL=mysql://x":               "database-url",
		"YOLDA_JWT_SECRET=short":                     "jwt-secret",
		"YOLDA_HTTP_ADDR=nowhere":                    "http-addr",
		"YOLDA_HTTP_ADDR=127.0.0.1:99999":            "http-addr",
		"YOLDA_HTTP_ADDR=127.0.0.1:http":             "http-addr",
		"YOLDA_PPROF_ADDR=127.0.0.1:70000":           "pprof-addr",
		"YOLDA_OPS_ADDR=nowhere":                     "ops-addr",
		"YOLDA_OPS_ADDR=127.0.0.1:8080":              "ops-addr must differ",
		"YOLDA_BODY_READ_TIMEOUT=1ns":                "body-read-timeout",
		"YOLDA_MAX_CONNS_PER_IP=-1":                  "max-conns-per-ip",
		"YOLDA_LOG_LEVEL=loud":                       "log-level",
		"YOLDA_LOG_FORMAT=xml":                       "log-format",
		"YOLDA_TRUSTED_PROXIES=10.0.0.0/99":          "trusted-proxies",
		"YOLDA_INTAKE_BATCH_MAX=0":                   "intake-batch-max",
		"YOLDA_INTAKE_WRITERS=-1":                    "intake-writers",
		"YOLDA_INTAKE_BATCH_WAIT=-1ms":               "intake-batch-wait",
		"YOLDA_INTAKE_QUEUE=0":                       "intake-queue",
		"YOLDA_TOKEN_TTL=forever":                    "YOLDA_TOKEN_TTL",
		"YOLDA_TOKEN_TTL=10s":                        "token-ttl",
		"YOLDA_SHUTDOWN_TIMEOUT=0s":                  "shutdown-timeout",
		"YOLDA_MAX_BODY_BYTES=10":                    "max-body-bytes",
		"YOLDA_MAX_BODY_BYTES=lots":                  "YOLDA_MAX_BODY_BYTES",
		"YOLDA_MAX_IN_FLIGHT=-1":                     "max-in-flight",
		"YOLDA_RATE_LIMIT_USER=-1":                   "rate-limit-user",
		"YOLDA_RATE_LIMIT_USER=NaN":                  "rate-limit-user",
		"YOLDA_RATE_LIMIT_IP=-0.5":                   "rate-limit-ip",
		"YOLDA_RATE_LIMIT_USER_BURST=0":              "rate-limit-user-burst",
		"YOLDA_RATE_LIMIT_IP_BURST=-3":               "rate-limit-ip-burst",
		"YOLDA_NATS_URL=http://broker:4222":          "nats-url",
		"YOLDA_NATS_TLS_CERT_FILE=/c.pem":            "nats-tls-key-file",
		"YOLDA_NATS_REPLICAS=7":                      "nats-replicas",
		"YOLDA_EVENTS_MAX_AGE=0s":                    "events-max-age",
		"YOLDA_NATS_DUPLICATE_WINDOW=1m":             "relay-republish-window",
		"YOLDA_RELAY_REPUBLISH_WINDOW=0s":            "relay-republish-window",
		"YOLDA_OUTBOX_RETENTION=1m":                  "outbox-retention",
		"YOLDA_SWEEP_INTERVAL=0s":                    "sweep-interval",
		"YOLDA_WORKER_CONCURRENCY=0":                 "worker-concurrency",
		"YOLDA_CONSUMER_BATCH_MAX=0":                 "consumer-batch-max",
		"YOLDA_CONSUMER_BATCH_WAIT=2s":               "consumer-batch-wait",
		"YOLDA_WAREHOUSE_BATCH_MAX=0":                "warehouse-batch-max",
		"YOLDA_WAREHOUSE_BATCH_MAX=10001":            "warehouse-batch-max",
		"YOLDA_REDIS_URL=memcached://x":              "redis-url",
		"YOLDA_DRIVER_STALE_AFTER=1s":                "driver-stale-after",
		"YOLDA_ETA_ROAD_FACTOR=0.5":                  "eta-road-factor",
		"YOLDA_ETA_SPEED_KMH=0":                      "eta-speed-kmh",
		"YOLDA_PASSWORD_HASH_CONCURRENCY=-1":         "password-hash-concurrency",
		"YOLDA_AUDIT_RETENTION=1h":                   "audit-retention",
		"YOLDA_WAREHOUSE_URL=duckdb://x":             "warehouse-url",
		"YOLDA_REPORTS_URL=ftp://warehouse:8081":     "reports-url",
		"YOLDA_WORKER_CONCURRENCY=eight":             "YOLDA_WORKER_CONCURRENCY",
		"YOLDA_RATE_LIMIT_USER=fast":                 "YOLDA_RATE_LIMIT_USER",
		"YOLDA_DATABASE_URL=postgres://u:pw@:5432x/": "database-url",
	} {
		k, v, _ := strings.Cut(env, "=")
		_, err := load(t, map[string]string{k: v})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want mention of %s", env, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("%s: the error shows the password: %v", env, err)
		}
	}
	for _, env := range []string{
		"YOLDA_HTTP_ADDR=:8080", "YOLDA_HTTP_ADDR=127.0.0.1:0", "YOLDA_NATS_URL=127.0.0.1:4222,nats://b:4222",
		"YOLDA_RATE_LIMIT_USER=0", "YOLDA_PPROF_ADDR=localhost:6060", "YOLDA_REDIS_URL=redis://127.0.0.1:6379/1",
	} {
		k, v, _ := strings.Cut(env, "=")
		if _, err := load(t, map[string]string{k: v}); err != nil {
			t.Errorf("%s rejected: %v", env, err)
		}
	}
}

func TestWarnings(t *testing.T) {
	for addr, warns := range map[string]bool{
		"0.0.0.0:6060": true, ":6060": true, "10.1.2.3:6060": true,
		"127.0.0.1:6060": false, "[::1]:6060": false, "localhost:6060": false,
	} {
		c := Defaults()
		c.PprofAddr = addr
		got := strings.Join(c.Warnings(), ";")
		if strings.Contains(got, "pprof-addr") != warns {
			t.Errorf("pprof-addr %s: warnings %q, want a warning: %v", addr, got, warns)
		}
	}
}

// TestEverySettingIsDeclared: every field of Config is in settings() once,
// so it has a flag, a variable and a place in Masked.
func TestEverySettingIsDeclared(t *testing.T) {
	var c Config
	seen := map[uintptr]string{}
	names := map[string]bool{}
	for _, s := range c.settings() {
		p := reflect.ValueOf(s.ptr).Pointer()
		if other, dup := seen[p]; dup {
			t.Errorf("settings %s and %s share a field", s.name, other)
		}
		seen[p] = s.name
		if names[s.name] {
			t.Errorf("setting %s declared twice", s.name)
		}
		names[s.name] = true
	}
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		if _, ok := seen[v.Field(i).Addr().Pointer()]; !ok {
			t.Errorf("field %s has no setting", v.Type().Field(i).Name)
		}
	}
}

// TestEveryFieldHasADocComment reads config.go: a setting nobody explains
// is a setting nobody can use.
func TestEveryFieldHasADocComment(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "Config" {
			return true
		}
		found = true
		for _, field := range ts.Type.(*ast.StructType).Fields.List {
			if field.Doc == nil || !strings.HasPrefix(field.Doc.Text(), field.Names[0].Name+" ") {
				t.Errorf("field %s has no doc comment starting with its name", field.Names[0].Name)
			}
		}
		return false
	})
	if !found {
		t.Fatal("type Config not found")
	}
}

func TestMaskedHidesSecrets(t *testing.T) {
	c, err := load(t, map[string]string{
		"YOLDA_JWT_SECRET":    "super-secret-super-secret-super-secret",
		"YOLDA_DATABASE_URL":  "postgres://yolda:hunter2@db:5432/yolda?sslmode=require",
		"YOLDA_REDIS_URL":     "redis://:redispass@cache:6379/0",
		"YOLDA_NATS_URL":      "nats://u:natspass@n1:4222,nats://u:natspass2@n2:4222",
		"YOLDA_WAREHOUSE_URL": "postgres://wh:whpass@wh:5432/wh",
	})
	if err != nil {
		t.Fatal(err)
	}
	dump := fmt.Sprint(c.Masked()...)
	for _, secret := range []string{"super-secret", "hunter2", "redispass", "natspass", "whpass"} {
		if strings.Contains(dump, secret) {
			t.Errorf("masked config shows %q: %s", secret, dump)
		}
	}
	for _, shown := range []string{"db:5432", "n2:4222", "cache:6379", "wh:5432"} {
		if !strings.Contains(dump, shown) {
			t.Errorf("masked config hides %s: %s", shown, dump)
		}
	}
}

// TestMaskedCoversEverySetting: each setting has its key and value.
func TestMaskedCoversEverySetting(t *testing.T) {
	c := Defaults()
	kv := c.Masked()
	keys := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		keys[kv[i].(string)] = kv[i+1]
	}
	for _, s := range c.settings() {
		if _, ok := keys[strings.ReplaceAll(s.name, "-", "_")]; !ok {
			t.Errorf("Masked has no %s", s.name)
		}
	}
	if keys["shutdown_timeout"] != "20s" || keys["intake_batch_max"] != 128 || keys["jwt_secret"] != "" {
		t.Errorf("Masked values: %v", keys)
	}
}

// TestRegisterOnly: a command that takes a few settings as flags lists
// only those, and still reads every setting from the environment.
func TestRegisterOnly(t *testing.T) {
	c := Defaults()
	fs := flag.NewFlagSet("users add", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	env := map[string]string{"YOLDA_DATABASE_URL": "postgres://db/yolda", "YOLDA_LOG_LEVEL": "debug"}
	if err := c.RegisterOnly(fs, func(k string) string { return env[k] }, "data-dir", "database-url"); err != nil {
		t.Fatal(err)
	}
	var flags []string
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f.Name) })
	if strings.Join(flags, ",") != "data-dir,database-url" {
		t.Errorf("flags = %v", flags)
	}
	if c.DatabaseURL != "postgres://db/yolda" || c.LogLevel != "debug" {
		t.Errorf("environment not applied: %+v", c)
	}
	if err := c.RegisterOnly(flag.NewFlagSet("x", flag.ContinueOnError), func(string) string { return "" }, "no-such"); err == nil {
		t.Error("unknown setting accepted")
	}
}

func TestWarehouseIsNotTheOperationalDatabase(t *testing.T) {
	const u = "postgres://yolda@db:5432/yolda"
	_, err := load(t, map[string]string{"YOLDA_DATABASE_URL": u, "YOLDA_WAREHOUSE_URL": u})
	if err == nil || !strings.Contains(err.Error(), "warehouse-url must not be the operational database") {
		t.Fatalf("err = %v, want a refusal of the operational database as warehouse", err)
	}
	if _, err := load(t, map[string]string{"YOLDA_DATABASE_URL": u, "YOLDA_WAREHOUSE_URL": u + "_reports"}); err != nil {
		t.Fatalf("a separate warehouse database refused: %v", err)
	}
}

// TestReadmeListsEverySetting: the README's configuration table names
// every variable, so that none exists only in the code.
func TestReadmeListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	for _, s := range c.settings() {
		if !strings.Contains(string(readme), "`"+EnvName(s.name)+"`") {
			t.Errorf("README.md does not list %s", EnvName(s.name))
		}
	}
}
