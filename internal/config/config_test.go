package config

import (
	"flag"
	"fmt"
	"io"
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

func TestPrecedence(t *testing.T) {
	c, err := load(t, map[string]string{"YOLDA_HTTP_ADDR": "127.0.0.1:9000", "YOLDA_TOKEN_TTL": "2h", "YOLDA_INTAKE_BATCH_MAX": "1"},
		"--token-ttl", "30m")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:9000" || c.TokenTTL != 30*time.Minute || c.IntakeBatchMax != 1 || c.DataDir != "./yolda-data" {
		t.Errorf("env over defaults, flags over env: %+v", c)
	}
}

func TestValidate(t *testing.T) {
	for env, want := range map[string]string{
		"YOLDA_DATABASE_URL=mysql://x":      "database-url",
		"YOLDA_JWT_SECRET=short":            "jwt-secret",
		"YOLDA_HTTP_ADDR=nowhere":           "http-addr",
		"YOLDA_LOG_LEVEL=loud":              "log-level",
		"YOLDA_TRUSTED_PROXIES=10.0.0.0/99": "trusted-proxies",
		"YOLDA_INTAKE_BATCH_MAX=0":          "intake-batch-max",
		"YOLDA_TOKEN_TTL=forever":           "YOLDA_TOKEN_TTL",
		// Shorter than the relay's republish window (2m30s): the broker
		// would keep copies it should have dropped.
		"YOLDA_NATS_DUPLICATE_WINDOW=2m": "relay-republish-window",
	} {
		k, v, _ := strings.Cut(env, "=")
		if _, err := load(t, map[string]string{k: v}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want mention of %s", env, err, want)
		}
	}
}

func TestMaskedHidesSecrets(t *testing.T) {
	c, err := load(t, map[string]string{
		"YOLDA_JWT_SECRET":   "super-secret-super-secret-super-secret",
		"YOLDA_DATABASE_URL": "postgres://yolda:hunter2@db:5432/yolda?sslmode=require",
		"YOLDA_REDIS_URL":    "redis://:redispass@cache:6379/0",
	})
	if err != nil {
		t.Fatal(err)
	}
	dump := fmt.Sprint(c.Masked()...)
	for _, secret := range []string{"super-secret", "hunter2", "redispass"} {
		if strings.Contains(dump, secret) {
			t.Errorf("masked config shows %q: %s", secret, dump)
		}
	}
	if !strings.Contains(dump, "db:5432") {
		t.Errorf("masked config hides too much: %s", dump)
	}
}
