package app_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDriversWalkthrough is what a new user does with curl: add a provider
// and a driver with the CLI, start the server, go online, report a
// position, and see it in the operators' list; with each position index.
func TestDriversWalkthrough(t *testing.T) {
	indexes := map[string]string{"memory": ""}
	if u := os.Getenv("YOLDA_TEST_REDIS_URL"); u != "" {
		indexes["redis"] = u
	} else if os.Getenv("YOLDA_REQUIRE_SERVICES") != "" {
		t.Fatal("YOLDA_TEST_REDIS_URL is not set and YOLDA_REQUIRE_SERVICES is")
	}
	for name, redisURL := range indexes {
		t.Run(name, func(t *testing.T) {
			t.Setenv("YOLDA_REDIS_URL", redisURL)
			e := environment{dataDir: t.TempDir()}
			e.addAccounts(t)
			if out, err := e.run(t, "providers", "add", "--code", "acme-tow", "--name", "Acme Çekici"); err != nil || !strings.Contains(out, "created provider acme-tow") {
				t.Fatalf("providers add: %v %s", err, out)
			}
			if out, err := e.run(t, "providers", "add", "--code", "acme-tow", "--name", "Again"); err == nil || !strings.Contains(out, "code") {
				t.Errorf("a taken provider code was accepted: %s", out)
			}
			if out, err := e.run(t, "users", "add", "--role", "driver", "--username", "driver1", "--password", "driver-password",
				"--vehicle-plate", "34tow1", "--capabilities", "tow,jump_start", "--provider", "nope"); err == nil || !strings.Contains(out, "provider") {
				t.Errorf("an unknown provider was accepted: %s", out)
			}
			if out, err := e.run(t, "users", "add", "--role", "driver", "--username", "driver1", "--password", "driver-password",
				"--vehicle-plate", "34tow1", "--capabilities", "tow,jump_start", "--provider", "acme-tow"); err != nil {
				t.Fatalf("users add driver: %v %s", err, out)
			}
			if out, err := e.run(t, "providers", "list"); err != nil || !strings.Contains(out, "acme-tow\tAcme Çekici") {
				t.Errorf("providers list: %v %s", err, out)
			}
			in := e.start(t)
			driver := login(t, in, "driver1", "driver-password")
			operator := login(t, in, "operator1", "op-password")
			send := func(method, path, body string) int {
				t.Helper()
				req, _ := http.NewRequest(method, in.url(path), strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+driver)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if code := send("PUT", "/v1/drivers/me/availability", `{"availability":"online"}`); code != 200 {
				t.Fatalf("availability: %d", code)
			}
			at := time.Now().UTC().Format(time.RFC3339)
			if code := send("POST", "/v1/drivers/me/location", fmt.Sprintf(`{"lat":41.0082,"lng":28.9784,"heading":90,"speed_kmh":30,"accuracy_m":5,"recorded_at":%q}`, at)); code != 204 {
				t.Fatalf("location: %d", code)
			}
			code, body := get(t, in, operator, "/v1/drivers?provider=acme-tow")
			for _, want := range []string{`"username":"driver1"`, `"availability":"online"`, `"provider":{"code":"acme-tow","name":"Acme Çekici"}`,
				`"lat":41.0082`, `"vehicle_plate":"34TOW1"`, `"vehicle_kind":"tow_truck"`, `"fresh":true`} {
				if code != 200 || !strings.Contains(string(body), want) {
					t.Errorf("GET /v1/drivers: %d, lacks %s\n%s", code, want, body)
				}
			}
			if code, _ := get(t, in, driver, "/v1/drivers"); code != 403 {
				t.Errorf("a driver listing drivers: %d, want 403", code)
			}
			// Stop it before reading its log (the reader goroutine is done then).
			if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := <-in.done; err != nil {
				t.Errorf("shutdown: %v", err)
			}
			if !strings.Contains(in.logs.String(), `"msg":"position index ready","engine":"`+name+`"`) {
				t.Errorf("the log does not say the %s position index is in use", name)
			}
		})
	}
}
