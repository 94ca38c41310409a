package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/bus/natstest"
	"github.com/yolda/yolda/internal/store/postgres/pgtest"
)

// insurersAnswer is what the test reads of GET /v1/insurers.
type insurersAnswer struct {
	Items []struct {
		Code    string `json:"code"`
		Breaker string `json:"breaker"`
		Calls   uint64 `json:"calls"`
		Errors  uint64 `json:"errors"`
		Reports []struct {
			Process string `json:"process"`
			Breaker string `json:"breaker"`
		} `json:"reports"`
	} `json:"items"`
	Source      string  `json:"source"`
	SourceError *string `json:"source_error"`
	Processes   []struct {
		Process    string    `json:"process"`
		ReportedAt time.Time `json:"reported_at"`
		Self       bool      `json:"self"`
	} `json:"processes"`
}

// With split roles the api process calls no insurer: GET /v1/insurers
// answers from the health board what the insurance process posted (its
// breaker open), and forgets that process once it is killed.
func TestInsurerHealthAcrossProcesses(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	file := filepath.Join(t.TempDir(), "insurers.yaml")
	yaml := fmt.Sprintf("insurers:\n  - code: anadolu\n    name: Anadolu\n    base_url: %s\n    retry:\n      attempts: 1\n    breaker:\n      failures: 1\n      open_for: 1h\n", down.URL)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	nats := natstest.StartServer(t, natstest.Options{})
	e := environment{dataDir: t.TempDir(), databaseURL: pgtest.URL(t)}.with(
		"YOLDA_NATS_URL="+nats.URL(), "YOLDA_INSURERS_FILE="+file, "YOLDA_JWT_SECRET=shared-secret-shared-secret-shared-secret")
	e.addAccounts(t)
	api := e.start(t, "--roles", "api")
	e2 := e
	e2.dataDir = t.TempDir()
	insurance := e2.start(t, "--roles", "relay,insurance")

	operator := login(t, api, "operator1", "op-password")
	customer := login(t, api, "ayse", "ayse-password")
	read := func() (insurersAnswer, string) {
		code, b := get(t, api, operator, "/v1/insurers")
		var a insurersAnswer
		if code != 200 || json.Unmarshal(b, &a) != nil {
			t.Fatalf("GET /v1/insurers: %d %s", code, b)
		}
		return a, string(b)
	}
	if _, code, err := post(http.DefaultClient, api, customer); err != nil || code != 202 {
		t.Fatalf("create request: %d %v", code, err)
	}
	var last string
	until(t, time.Minute, func() bool {
		a, raw := read()
		last = raw
		return a.Source == "board" && len(a.Processes) == 1 && !a.Processes[0].Self &&
			len(a.Items) == 1 && a.Items[0].Breaker == "open" && a.Items[0].Errors >= 1 &&
			len(a.Items[0].Reports) == 1 && a.Items[0].Reports[0].Process == a.Processes[0].Process
	}, func() string { return "the insurance process's open breaker on the api's answer: " + last })

	// Killed, it cannot take its entry down: the entry ages out (10 s).
	if err := insurance.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-insurance.exited
	until(t, time.Minute, func() bool {
		a, raw := read()
		last = raw
		return a.Source == "board" && len(a.Processes) == 0 && len(a.Items) == 1 && a.Items[0].Breaker == "closed" && len(a.Items[0].Reports) == 0
	}, func() string { return "the killed process to drop off: " + last })
}
