package app_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// procStatus reads a field of /proc/PID/status in KiB (VmHWM: the peak
// resident set; VmRSS: the resident set now).
func procStatus(t *testing.T, pid int, field string) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// 200 concurrent logins with the real argon2id parameters (19 MiB a
// hash), from one address with the address limit off, against the real
// binary: the peak resident set stays within the hashing slots' worth, what
// does not fit is answered 503 with Retry-After, and the memory goes back
// after the burst. Before the bound this flood peaked at several GiB.
//
// The binary is built without the race detector here: its shadow memory
// would measure the detector, not Yolda.
func TestLoginFloodPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 200 real passwords")
	}
	bin := filepath.Join(t.TempDir(), "yolda")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/yolda").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	e := environment{dataDir: t.TempDir()}
	add := exec.Command(bin, "users", "add", "--role", "customer", "--username", "ayse", "--password", "ayse-password")
	add.Env = e.env()
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("users add: %v %s", err, out)
	}
	cmd := exec.Command(bin, "serve", "--http-addr", "127.0.0.1:0", "--roles", "api")
	// The per-address limits off: a flood from many addresses meets only
	// the hashing bound.
	cmd.Env = e.with("GOMAXPROCS=2", "YOLDA_MAX_CONNS_PER_IP=0", "YOLDA_RATE_LIMIT_IP=0").env()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(60 * time.Second):
		t.Fatal("yolda did not start")
	}
	pid := cmd.Process.Pid
	loginOnce := func(client *http.Client) (int, string) {
		resp, err := client.Post("http://"+addr+"/v1/auth/login", "application/json",
			strings.NewReader(`{"username":"ayse","password":"ayse-password"}`))
		if err != nil {
			return 0, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	if code, _ := loginOnce(http.DefaultClient); code != 200 {
		t.Fatalf("control login: %d", code)
	}
	baseRSS := procStatus(t, pid, "VmRSS")

	const logins = 200
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: logins}, Timeout: 60 * time.Second}
	var wg sync.WaitGroup
	start := make(chan struct{})
	var mu sync.Mutex
	codes := map[int]int{}
	missingRetryAfter := 0
	for range logins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			code, retry := loginOnce(client)
			mu.Lock()
			defer mu.Unlock()
			codes[code]++
			if code == 503 && retry == "" {
				missingRetryAfter++
			}
		}()
	}
	close(start)
	wg.Wait()
	burstEnd := time.Now()
	peak := procStatus(t, pid, "VmHWM")
	t.Logf("answers %v; resident set: %d MiB before, peak %d MiB", codes, baseRSS>>10, peak>>10)
	if codes[200]+codes[503] != logins || codes[200] == 0 || missingRetryAfter > 0 {
		t.Errorf("answers %v (%d 503 without Retry-After): want only 200 and 503 with Retry-After", codes, missingRetryAfter)
	}
	// Two slots of 19 MiB, their garbage and the server itself: a few
	// hundred MiB at most, where the unbounded flood took GiBs.
	const boundMiB = 400
	if peak>>10 > boundMiB {
		t.Errorf("peak resident set %d MiB, bound %d MiB", peak>>10, boundMiB)
	}
	// And no plateau: the memory is handed back within seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		rss := procStatus(t, pid, "VmRSS")
		if rss>>10 <= baseRSS>>10+32 {
			t.Logf("resident set back to %d MiB %s after the burst", rss>>10, time.Since(burstEnd).Round(10*time.Millisecond))
			break
		}
		if ctx.Err() != nil {
			t.Errorf("resident set still %d MiB 30s after the burst (%d MiB before it)", rss>>10, baseRSS>>10)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}
