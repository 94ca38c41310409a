package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

// panickingIntake stands in for a bug deep in a handler's call chain.
type panickingIntake struct{ httpapi.Intake }

func (panickingIntake) Get(context.Context, identity.Principal, string) (intake.Request, error) {
	panic("secret internal detail")
}

// trustingAccounts takes every verified token at its word.
type trustingAccounts struct{ httpapi.Accounts }

func (trustingAccounts) Resolve(_ context.Context, p identity.Principal) (identity.Principal, error) {
	return p, nil
}

func TestPanicBecomesProblemAndLog(t *testing.T) {
	var logs bytes.Buffer
	tokens, err := auth.NewTokens([]byte("test-secret-test-secret-test-secret"), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Deps{
		Intake: panickingIntake{}, Tokens: tokens, Accounts: trustingAccounts{}, Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	srv := httptest.NewServer(api)
	defer srv.Close()
	tok, err := tokens.Issue(identity.Principal{UserID: "usr_1", Role: identity.Operator})
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
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("panic answered %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if strings.Contains(string(body), "secret internal detail") || strings.Contains(string(body), "goroutine") {
		t.Errorf("panic details reached the client: %s", body)
	}
	rid := resp.Header.Get("X-Request-Id")
	if !strings.Contains(string(body), rid) {
		t.Errorf("problem lacks the request id %s: %s", rid, body)
	}
	if !strings.Contains(logs.String(), "secret internal detail") || !strings.Contains(logs.String(), rid) {
		t.Errorf("panic not logged with its request id:\n%s", logs.String())
	}
	// The server still serves.
	if r, err := http.Get(srv.URL + "/healthz"); err != nil || r.StatusCode != 200 {
		t.Errorf("after panic: %v %v", err, r)
	}
}
