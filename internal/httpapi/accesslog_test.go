package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

// missingIntake answers every read with not found.
type missingIntake struct{ httpapi.Intake }

func (missingIntake) Get(context.Context, identity.Principal, string) (intake.Request, error) {
	return intake.Request{}, intake.ErrNotFound
}

// lockedBuffer is a log sink written by the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAccessLogNamesTheUser: the access log line of an authenticated
// request carries the principal (set by authenticate, inside observe) and
// its duration in milliseconds.
func TestAccessLogNamesTheUser(t *testing.T) {
	var logs lockedBuffer
	tokens, err := auth.NewTokens([]byte("test-secret-test-secret-test-secret"), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Deps{
		Intake: missingIntake{}, Tokens: tokens, Accounts: trustingAccounts{}, Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	}))
	defer srv.Close()
	tok, err := tokens.Issue(identity.Principal{UserID: "usr_42", Role: identity.Operator})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("GET", srv.URL+"/v1/requests/req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
	srv.Close() // the log line is written before the handler returns; this waits for it
	var line map[string]any
	for l := range strings.Lines(logs.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "http" {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no access log line:\n%s", logs.String())
	}
	if line["user"] != "usr_42" {
		t.Errorf("user = %v, want usr_42: %v", line["user"], line)
	}
	if ms, ok := line["took_ms"].(float64); !ok || ms < 0 || ms > 60_000 {
		t.Errorf("took_ms = %v (%T), want milliseconds: %v", line["took_ms"], line["took_ms"], line)
	}
	if _, raw := line["took"]; raw {
		t.Errorf("raw nanoseconds still logged: %v", line)
	}
}
