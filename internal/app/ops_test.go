package app_test

import (
	"bufio"
	"net/http"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

var opsListening = regexp.MustCompile(`"msg":"(listening|operations listening)","addr":"([^"]+)"`)

// TestOperationsListener runs the binary: /metrics answers on
// YOLDA_OPS_ADDR and is 404 on the API listener; probes answer on both. A
// worker-only process serves the operations listener and no API.
func TestOperationsListener(t *testing.T) {
	e := environment{dataDir: t.TempDir()}
	for _, roles := range []string{"all", "notify"} {
		t.Run(roles, func(t *testing.T) {
			cmd := exec.Command(binary, "serve", "--http-addr", "127.0.0.1:0", "--roles", roles)
			cmd.Env = e.env()
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			addrs := make(chan [2]string, 4)
			go func() {
				sc := bufio.NewScanner(stderr)
				sc.Buffer(make([]byte, 1<<20), 1<<20)
				for sc.Scan() {
					if m := opsListening.FindStringSubmatch(sc.Text()); m != nil {
						addrs <- [2]string{m[1], m[2]}
					}
				}
			}()
			listeners := 1 // operations
			if roles == "all" {
				listeners = 2 // and the API
			}
			got := map[string]string{}
			timeout := time.After(60 * time.Second)
			for len(got) < listeners {
				select {
				case a := <-addrs:
					got[a[0]] = a[1]
				case <-timeout:
					t.Fatalf("listeners seen: %v", got)
				}
			}
			status := func(addr, path string) int {
				resp, err := http.Get("http://" + addr + path)
				if err != nil {
					t.Fatalf("%s%s: %v", addr, path, err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			ops := got["operations listening"]
			for path, code := range map[string]int{"/metrics": 200, "/healthz": 200, "/readyz": 200, "/v1/requests": 404} {
				if s := status(ops, path); s != code {
					t.Errorf("ops %s: %d, want %d", path, s, code)
				}
			}
			if api, ok := got["listening"]; ok {
				for path, code := range map[string]int{"/metrics": 404, "/healthz": 200, "/readyz": 200, "/v1/requests": 401} {
					if s := status(api, path); s != code {
						t.Errorf("api %s: %d, want %d", path, s, code)
					}
				}
			}
		})
	}
}
