package app_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/store/postgres/pgtest"
)

// TestReadmeWalkthrough runs the README's walkthrough as a reader would:
// every sh block between its walkthrough markers, in order, in one bash,
// in an empty directory, with the built binary on PATH and no YOLDA_
// variable set but the addresses: 8080, 8081 and 9100 become free ports,
// so that the test can run beside anything. Each block's output is
// checked.
func TestReadmeWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv(pgtest.EnvRequire) != "" {
				t.Fatalf("%s is needed for the README walkthrough (.ci/run installs it)", tool)
			}
			t.Skipf("%s not installed: skipping the README walkthrough", tool)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := walkthroughBlocks(t, string(readme))
	api, ops, insurer := freePort(t), freePort(t), freePort(t)
	ports := strings.NewReplacer("localhost:8080", api, "127.0.0.1:8080", api, "localhost:8081", ops, "127.0.0.1:8081", ops,
		"localhost:9100", insurer, "127.0.0.1:9100", insurer)

	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for i, b := range blocks {
		script.WriteString("echo '@@block " + strconv.Itoa(i) + "@@'\n" + ports.Replace(b))
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + filepath.Dir(binary) + ":" + os.Getenv("PATH"), "HOME=" + dir, "YOLDA_HTTP_ADDR=" + api, "YOLDA_OPS_ADDR=" + ops}
	// Its own process group, so that the servers it starts in the
	// background go with it whatever happens.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Output goes to a file, not a pipe: a server the script left running
	// holds its stdout open, and Run must not wait for it.
	outFile, err := os.Create(filepath.Join(t.TempDir(), "walkthrough.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	cmd.Stdout, cmd.Stderr = outFile, outFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	err = cmd.Wait()
	outBytes, _ := os.ReadFile(outFile.Name())
	out := bytes.NewBuffer(outBytes)
	logs, _ := os.ReadFile(filepath.Join(dir, "yolda.log"))
	if err != nil {
		t.Fatalf("the walkthrough failed: %v\n%s\n--- yolda.log:\n%s", err, out.String(), logs)
	}

	t.Logf("what a reader sees:\n%s", out.String())
	got := strings.Split(out.String(), "@@block ")
	if len(got) != len(blocks)+1 {
		t.Fatalf("%d blocks ran, want %d:\n%s", len(got)-1, len(blocks), out.String())
	}
	want := [][]string{
		{`created customer ayse \(id usr_\w+\) in /\S+/yolda-data/yolda.db`, `created operator ops \(id usr_\w+\) in `},
		{`\{"id":"req_\w+","status":"dispatching","timeline":\["received","dispatching"\]\}`,
			`(?m)^req_\w+ dispatching$`, `(?m)^cancelled$`, `"field":"location.lat"`, `(?m)^/v1/requests$`, `(?m)^/openapi.json$`,
			`(?m)^yolda_http_requests_total\{.*route="/v1/requests"\} [1-9]`},
		{},
		{`(?m)^down$`, `(?m)^awaiting_insurance pending$`, `(?m)^ok$`, `(?m)^dispatching approved$`,
			`\{"code":"anadolu","breaker":"closed","calls":[1-9]\d*,"errors":[1-9]\d*\}`},
		{`created provider acme-tow \(Acme Çekici\) in /\S+/yolda.db`, `created driver ali \(id usr_\w+\) in `, `(?m)^online$`, `(?m)^204$`,
			`\{"username":"ali","vehicle_plate":"34TOW01","availability":"online","provider":"acme-tow"\}`},
		{`\{"request_id":"req_\w+","service_type":"tow","distance_m":\d+,"eta_seconds":\d+,"expires_at":"[^"]+"\}`,
			`\{"status":"assigned","assignment":\{"driver_id":"usr_\w+"`, `(?m)^en_route$`, `(?m)^arrived$`, `(?m)^in_service$`, `(?m)^completed$`},
		{`\{"status":"completed","timeline":\["received","awaiting_insurance","dispatching","assigned","en_route","arrived","in_service","completed"\]\}`},
		{`created admin boss \(id usr_\w+\) in `, `(?m)^\{"username":"ayse","disabled":true,"token_version":1\}$`, `(?m)^401$`,
			`enabled ayse \(id usr_\w+, role customer, token version 1\)`, `password reset: ayse \(id usr_\w+, role customer, token version 2\)`,
			`(?m)^user.password_reset cli:\S+\nuser.enabled cli:\S+\ntoken.refused disabled\nuser.disabled usr_\w+ phone stolen$`,
			`(?m)^login.succeeded usr_\w+$`},
		{},
	}
	if len(want) != len(blocks) {
		t.Fatalf("the README has %d walkthrough blocks; this test checks %d", len(blocks), len(want))
	}
	for i, patterns := range want {
		block := got[i+1]
		for _, p := range patterns {
			if !regexp.MustCompile(p).MatchString(block) {
				t.Errorf("block %d: no match for %s in:\n%s", i, p, block)
			}
		}
	}
	// The terminal shows curl's answers, not logs; the log file has no
	// NATS banner at the default level.
	if strings.Contains(out.String(), `"level":`) {
		t.Errorf("log lines reached the terminal:\n%s", out.String())
	}
	if len(logs) == 0 || bytes.Contains(logs, []byte("JETSTREAM")) || bytes.Contains(logs, []byte(`"level":"ERROR"`)) {
		t.Errorf("yolda.log is empty, shows the NATS banner or an error:\n%s", logs)
	}
}

// walkthroughBlocks returns the sh blocks between the walkthrough markers.
func walkthroughBlocks(t *testing.T, readme string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "<!-- walkthrough:")
	section, _, ok2 := strings.Cut(rest, "<!-- end of walkthrough -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no walkthrough markers")
	}
	var blocks []string
	for {
		_, after, found := strings.Cut(section, "\n```sh\n")
		if !found {
			break
		}
		body, tail, closed := strings.Cut(after, "\n```\n")
		if !closed {
			t.Fatal("unclosed sh block in the README walkthrough")
		}
		blocks = append(blocks, body+"\n")
		section = tail
	}
	if len(blocks) == 0 {
		t.Fatal("no sh block in the README walkthrough")
	}
	return blocks
}

// freePort returns a loopback address nobody listens on (now).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
