package configfile_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/configfile"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	cfgs, err := configfile.Parse([]byte(`
insurers:
  - code: anadolu
    base_url: http://127.0.0.1:9100
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []insurance.Config{{
		Code: "anadolu", Name: "anadolu", Adapter: "rest", BaseURL: "http://127.0.0.1:9100",
		Timeout:  2 * time.Second,
		Retry:    insurance.Retry{Attempts: 3, BaseDelay: 100 * time.Millisecond, MaxDelay: 2 * time.Second, Budget: 0.2},
		Breaker:  insurance.Breaker{Failures: 5, OpenFor: 30 * time.Second, HalfOpenProbes: 1},
		Bulkhead: 16, Patience: 10 * time.Minute, ArrivalSLAMinutes: insurance.DefaultArrivalSLAMinutes,
	}}
	if diff := cmp.Diff(want, cfgs, cmpopts.IgnoreUnexported(insurance.Secret{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := cfgs[0].Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestParseEverything(t *testing.T) {
	t.Parallel()
	file := `
insurers:
  - code: axa_tr-2
    name: AXA Sigorta
    adapter: rest
    base_url: https://api.axa.example/v2/
    timeout: 1500ms
    auth: {header: Authorization, scheme: Bearer, value_env: AXA_TOKEN}
    retry: {attempts: 5, base_delay: 50ms, max_delay: 1s, budget: 0.1}
    breaker: {failures: 7, open_for: 1m, half_open_probes: 2}
    bulkhead: 32
    patience: 30m
    verify_before_dispatch: true
    arrival_sla_minutes: 60
  - code: anadolu
    base_url: http://127.0.0.1:9100
    auth: {header: X-Api-Key, value_env: ANADOLU_KEY}
`
	cfgs, err := configfile.Parse([]byte(file), env(map[string]string{"AXA_TOKEN": "tok-axa", "ANADOLU_KEY": "key-anadolu"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []insurance.Config{{
		Code: "axa_tr-2", Name: "AXA Sigorta", Adapter: "rest", BaseURL: "https://api.axa.example/v2/",
		Timeout:  1500 * time.Millisecond,
		Auth:     insurance.Auth{Header: "Authorization", Scheme: "Bearer", ValueEnv: "AXA_TOKEN"},
		Retry:    insurance.Retry{Attempts: 5, BaseDelay: 50 * time.Millisecond, MaxDelay: time.Second, Budget: 0.1},
		Breaker:  insurance.Breaker{Failures: 7, OpenFor: time.Minute, HalfOpenProbes: 2},
		Bulkhead: 32, Patience: 30 * time.Minute, VerifyBeforeDispatch: true, ArrivalSLAMinutes: 60,
	}, {
		Code: "anadolu", Name: "anadolu", Adapter: "rest", BaseURL: "http://127.0.0.1:9100",
		Timeout:  2 * time.Second,
		Auth:     insurance.Auth{Header: "X-Api-Key", ValueEnv: "ANADOLU_KEY"},
		Retry:    insurance.Retry{Attempts: 3, BaseDelay: 100 * time.Millisecond, MaxDelay: 2 * time.Second, Budget: 0.2},
		Breaker:  insurance.Breaker{Failures: 5, OpenFor: 30 * time.Second, HalfOpenProbes: 1},
		Bulkhead: 16, Patience: 10 * time.Minute, ArrivalSLAMinutes: insurance.DefaultArrivalSLAMinutes,
	}}
	if diff := cmp.Diff(want, cfgs, cmpopts.IgnoreUnexported(insurance.Secret{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := cfgs[0].Auth.Value.Reveal(); got != "tok-axa" {
		t.Errorf("secret = %q, want the variable's value", got)
	}
	if got := cfgs[1].Auth.Value.Reveal(); got != "key-anadolu" {
		t.Errorf("secret = %q, want the variable's value", got)
	}

	// JSON is valid YAML.
	js := `{"insurers": [{"code": "anadolu", "base_url": "http://127.0.0.1:9100", "timeout": "3s", "verify_before_dispatch": true}]}`
	cfgs, err = configfile.Parse([]byte(js), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfgs[0].Timeout != 3*time.Second || !cfgs[0].VerifyBeforeDispatch {
		t.Errorf("from JSON: %v", cfgs[0])
	}
}

func TestParseEmpty(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"", "# nothing yet\n", "insurers: []\n", "{}"} {
		cfgs, err := configfile.Parse([]byte(file), env(nil))
		if err != nil || len(cfgs) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want no insurers", file, cfgs, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	const ok = "code: ok\n    base_url: http://x\n    "
	tests := []struct {
		name, insurer string // insurer: the YAML of one insurer (4-space indented lines)
		want          []string
	}{
		{"no code", "base_url: http://x", []string{"insurers[0] (no code): code: must be 1-64 of"}},
		{"bad code", "code: Anadolu Sigorta\n    base_url: http://x", []string{`insurers[0] (Anadolu Sigorta): code:`, `"Anadolu Sigorta"`}},
		{"long name", ok + "name: " + strings.Repeat("x", 201), []string{"insurers[0] (ok): name: must be 1-200 bytes"}},
		{"empty adapter", ok + `adapter: ""`, []string{"(ok): adapter:"}},
		{"no base_url", "code: ok", []string{"(ok): base_url: is required"}},
		{"relative base_url", "code: ok\n    base_url: /verify", []string{"(ok): base_url: must be an absolute http(s) URL"}},
		{"ftp base_url", "code: ok\n    base_url: ftp://x", []string{"(ok): base_url: must be an absolute http(s) URL"}},
		{"credentials in base_url", "code: ok\n    base_url: https://u:p@x", []string{"(ok): base_url: must not hold credentials"}},
		{"query in base_url", "code: ok\n    base_url: https://x/?key=1", []string{"(ok): base_url: must not have a query"}},
		{"zero arrival SLA", ok + "arrival_sla_minutes: 0", []string{"(ok): arrival_sla_minutes: must be in [1, 1440], got 0"}},
		{"day-long arrival SLA", ok + "arrival_sla_minutes: 1441", []string{"(ok): arrival_sla_minutes: must be in [1, 1440]"}},
		{"bad timeout", ok + "timeout: 2", []string{`(ok): timeout: want a duration like 2s or 500ms, got "2"`}},
		{"zero timeout", ok + "timeout: 0s", []string{"(ok): timeout: must be in (0, 5m0s], got 0s"}},
		{"negative timeout", ok + "timeout: -1s", []string{"(ok): timeout: must be in (0, 5m0s], got -1s"}},
		{"auth without header", ok + "auth: {value_env: K}", []string{"(ok): auth.header: is required"}},
		{"auth without value_env", ok + "auth: {header: X-Api-Key}", []string{"(ok): auth.value_env: is required"}},
		{"bad header", ok + "auth: {header: 'X Api', value_env: K}", []string{"(ok): auth.header: must be an HTTP header name"}},
		{"bad scheme", ok + "auth: {header: Authorization, scheme: 'Bear er', value_env: K}", []string{"(ok): auth.scheme:"}},
		{"bad env name", ok + "auth: {header: X-Api-Key, value_env: 'my-key'}", []string{"(ok): auth.value_env: must be an environment variable name"}},
		{"missing env", ok + "auth: {header: X-Api-Key, value_env: NOT_SET}", []string{"(ok): auth.value_env: environment variable NOT_SET is not set or empty"}},
		{"newline in secret", ok + "auth: {header: X-Api-Key, value_env: NEWLINE}", []string{"(ok): auth.value_env: environment variable NEWLINE holds a line break"}},
		{"zero attempts", ok + "retry: {attempts: 0}", []string{"(ok): retry.attempts: must be in [1, 10], got 0"}},
		{"many attempts", ok + "retry: {attempts: 11}", []string{"(ok): retry.attempts: must be in [1, 10], got 11"}},
		{"zero base_delay", ok + "retry: {base_delay: 0s}", []string{"(ok): retry.base_delay: must be in"}},
		{"max below base", ok + "retry: {base_delay: 1s, max_delay: 500ms}", []string{"(ok): retry.max_delay: must be >= retry.base_delay (1s), got 500ms"}},
		{"zero budget", ok + "retry: {budget: 0}", []string{"(ok): retry.budget: must be in (0, 1], got 0"}},
		{"big budget", ok + "retry: {budget: 1.5}", []string{"(ok): retry.budget: must be in (0, 1], got 1.5"}},
		{"zero failures", ok + "breaker: {failures: 0}", []string{"(ok): breaker.failures: must be in [1, 10000], got 0"}},
		{"bad open_for", ok + "breaker: {open_for: soon}", []string{`(ok): breaker.open_for: want a duration`}},
		{"zero probes", ok + "breaker: {half_open_probes: 0}", []string{"(ok): breaker.half_open_probes: must be in [1, 1000], got 0"}},
		{"zero bulkhead", ok + "bulkhead: 0", []string{"(ok): bulkhead: must be in [1, 10000], got 0"}},
		{"negative patience", ok + "patience: -5m", []string{"(ok): patience: must be in (0, 168h0m0s], got -5m0s"}},
		{"several at once", "code: ok\n    timeout: 0s\n    bulkhead: -1", []string{"(ok): base_url: is required", "(ok): timeout:", "(ok): bulkhead:"}},
		{"unknown field", ok + "retyr: {attempts: 2}", []string{"field retyr not found in an insurer"}},
		{"unknown nested field", ok + "retry: {attempts: 2, jitter: full}", []string{"field jitter not found in retry"}},
		{"secret in the file", ok + "auth: {header: X-Api-Key, value: hunter2}", []string{"field value not found in auth"}},
		{"wrong type", ok + "bulkhead: lots", []string{"cannot unmarshal", "lots"}},
	}
	getenv := env(map[string]string{"K": "v", "NEWLINE": "a\nb"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := "insurers:\n  - " + tt.insurer + "\n"
			_, err := configfile.Parse([]byte(file), getenv)
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", file)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}

	t.Run("unknown top-level field", func(t *testing.T) {
		t.Parallel()
		_, err := configfile.Parse([]byte("insurer:\n  - code: ok\n"), env(nil))
		if err == nil || !strings.Contains(err.Error(), "field insurer not found in the file's top level") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("duplicate code", func(t *testing.T) {
		t.Parallel()
		file := "insurers:\n  - {code: a, base_url: 'http://x'}\n  - {code: b, base_url: 'http://x'}\n  - {code: a, base_url: 'http://y'}\n"
		_, err := configfile.Parse([]byte(file), env(nil))
		if err == nil || !strings.Contains(err.Error(), `insurers[2] (a): code: "a" is already used by insurers[0]`) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("every insurer reported", func(t *testing.T) {
		t.Parallel()
		file := "insurers:\n  - {code: a, base_url: 'http://x', bulkhead: 0}\n  - {code: b, base_url: 'http://x', timeout: 1h}\n"
		_, err := configfile.Parse([]byte(file), env(nil))
		if err == nil || !strings.Contains(err.Error(), "insurers[0] (a): bulkhead") || !strings.Contains(err.Error(), "insurers[1] (b): timeout") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("two documents", func(t *testing.T) {
		t.Parallel()
		if _, err := configfile.Parse([]byte("insurers: []\n---\ninsurers: []\n"), env(nil)); err == nil {
			t.Error("Parse accepted two YAML documents")
		}
	})
}

// The secret reaches the adapter through Reveal and nowhere else.
func TestSecretNeverPrinted(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-s3cret"
	cfgs, err := configfile.Parse([]byte(`
insurers:
  - code: anadolu
    base_url: http://127.0.0.1:9100
    auth: {header: Authorization, scheme: Bearer, value_env: ANADOLU_TOKEN}
`), env(map[string]string{"ANADOLU_TOKEN": secret}))
	if err != nil {
		t.Fatal(err)
	}
	c := cfgs[0]
	if c.Auth.Value.Reveal() != secret {
		t.Fatal("Reveal does not return the secret")
	}

	var out bytes.Buffer
	fmt.Fprintf(&out, "%v\n%+v\n%#v\n%s\n%v\n%+v\n%#v\n%q\n%x\n", c, c, c, c, c.Auth, c.Auth, c.Auth, c.Auth.Value, c.Auth.Value)
	out.WriteString(c.String())
	js, _ := json.Marshal(c)
	out.Write(js)
	for _, h := range []slog.Handler{slog.NewJSONHandler(&out, nil), slog.NewTextHandler(&out, nil)} {
		log := slog.New(h)
		log.Info("insurer", "config", c, "auth", c.Auth, "secret", c.Auth.Value, "any", any(c.Auth))
	}
	if strings.Contains(out.String(), secret) {
		t.Errorf("the secret was printed:\n%s", out.String())
	}
	if !strings.Contains(c.String(), "Authorization: Bearer *** (from $ANADOLU_TOKEN)") {
		t.Errorf("String() = %s", c)
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "insurers.yaml")
	if err := os.WriteFile(path, []byte("insurers:\n  - {code: a, base_url: 'http://x', bulkhead: 0}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := configfile.LoadFile(path, nil)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "bulkhead") {
		t.Errorf("LoadFile(bad) = %v, want an error naming the file and the field", err)
	}
	if _, err := configfile.LoadFile(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Error("LoadFile(missing) = nil error")
	}
	os.WriteFile(path, []byte("insurers:\n  - {code: a, base_url: 'http://x'}\n"), 0o600)
	cfgs, err := configfile.LoadFile(path, nil)
	if err != nil || len(cfgs) != 1 || cfgs[0].Code != "a" {
		t.Errorf("LoadFile = %v, %v", cfgs, err)
	}
}
