package deploy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/loadgen"
)

// TestBenchIntakeThroughNginx measures POST /v1/requests through Nginx
// with 1, 2 and 4 api processes on PostgreSQL, and with one api process
// without Nginx (the cost of the hop), with the CPU seconds each part
// spent per accepted request. Not a test: it runs when YOLDA_BENCH=intake
// (docs/benchmarks.md has the numbers and the command).
func TestBenchIntakeThroughNginx(t *testing.T) {
	if os.Getenv("YOLDA_BENCH") != "intake" {
		t.Skip("set YOLDA_BENCH=intake to run the benchmark")
	}
	dur, _ := time.ParseDuration(envOr("YOLDA_BENCH_DURATION", "20s"))
	conc, _ := strconv.Atoi(envOr("YOLDA_BENCH_CONCURRENCY", "64"))
	var lines []string
	for _, n := range []int{1, 2, 4} {
		roles := filepath.Join(t.TempDir(), "roles.txt")
		os.WriteFile(roles, []byte(fmt.Sprintf("api %d http\n", n)), 0o644)
		func() {
			c := startCluster(t, "YOLDA_CLUSTER_ROLES="+roles, "YOLDA_RATE_LIMITS=off", "YOLDA_LOG_LEVEL=warn",
				"YOLDA_MAX_IN_FLIGHT=0", "YOLDA_CACHE_TTL=0", "YOLDA_EDGE_API_RATE=1000000", "YOLDA_EDGE_API_BURST=1000000")
			c.yolda(t, "users", "add", "--role", "customer", "--username", "bench", "--password", "bench-password")
			pem, _ := os.ReadFile(c.env["NGINX_CERT"])
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			targets := []struct{ name, url string }{{fmt.Sprintf("nginx -> %d api", n), c.base}}
			if n == 1 {
				targets = append(targets, struct{ name, url string }{"1 api, no nginx", "http://" + c.env["API_ADDRS"]})
			}
			for _, tg := range targets {
				o := loadgen.Options{BaseURL: tg.url, Username: "bench", Password: "bench-password", Concurrency: conc,
					Insurers: []string{"anadolu"}, TLS: &tls.Config{RootCAs: pool}}
				warm := o
				warm.Duration = 3 * time.Second
				if _, err := loadgen.Run(context.Background(), warm); err != nil {
					t.Fatal(err)
				}
				before := c.cpu(t)
				o.Duration = dur
				res, err := loadgen.Run(context.Background(), o)
				if err != nil {
					t.Fatal(err)
				}
				after := c.cpu(t)
				per := func(k string) string {
					return fmt.Sprintf("%.0f µs", (after[k]-before[k])/float64(res.Accepted)*1e6)
				}
				line := fmt.Sprintf("| %s | %d | %.0f | %s | %s | %s | %s | %s | %s |", tg.name, conc, res.AcceptedPerSec,
					res.P50.Round(100*time.Microsecond), res.P99.Round(100*time.Microsecond),
					per("api"), per("nginx"), per("postgres"), per("total"))
				if len(res.Statuses) > 0 {
					line += fmt.Sprintf(" not 202: %v", res.Statuses)
				}
				t.Log(line)
				lines = append(lines, line)
			}
		}()
	}
	t.Log("\n| target | connections | accepted/s | p50 | p99 | api CPU/req | nginx CPU/req | PostgreSQL CPU/req | all CPU/req |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n" + strings.Join(lines, "\n"))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// cpu is the CPU seconds spent so far by the api processes, Nginx and
// PostgreSQL (each process and its children, from /proc).
func (c *cluster) cpu(t *testing.T) map[string]float64 {
	out := map[string]float64{}
	pids, _ := filepath.Glob(filepath.Join(c.dir, "pids", "api-*.pid"))
	for _, p := range pids {
		out["api"] += treeCPU(readPid(p))
	}
	out["nginx"] = treeCPU(readPid(filepath.Join(c.dir, "nginx", "nginx.pid")))
	out["postgres"] = treeCPU(readPid(filepath.Join(c.dir, "pg", "data", "postmaster.pid")))
	out["total"] = out["api"] + out["nginx"] + out["postgres"]
	return out
}

func readPid(path string) int {
	b, _ := os.ReadFile(path)
	line, _, _ := strings.Cut(string(b), "\n")
	n, _ := strconv.Atoi(strings.TrimSpace(line))
	return n
}

// treeCPU is utime+stime (with children reaped) of pid and every live
// descendant, in seconds.
func treeCPU(root int) float64 {
	if root == 0 {
		return 0
	}
	children := map[int][]int{}
	cpu := map[int]float64{}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndex(s, ")")
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) < 15 {
			continue
		}
		pid, _ := strconv.Atoi(strings.Fields(s)[0])
		ppid, _ := strconv.Atoi(f[1])
		var ticks float64
		for _, k := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
			v, _ := strconv.ParseFloat(f[k], 64)
			ticks += v
		}
		children[ppid] = append(children[ppid], pid)
		cpu[pid] = ticks / 100
	}
	var sum float64
	stack := []int{root}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		sum += cpu[p]
		stack = append(stack, children[p]...)
	}
	return sum
}
