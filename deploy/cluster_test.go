package deploy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/bus/natstest"
)

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// yoldaBinary builds the yolda binary once for the package's tests.
func yoldaBinary(t *testing.T) string {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "yolda-deploy-bin-")
		if err != nil {
			buildErr = err
			return
		}
		built = filepath.Join(dir, "yolda")
		out, err := exec.Command("go", "build", "-o", built, "../cmd/yolda").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// cluster is a topology started by deploy/local/cluster.sh for a test.
type cluster struct {
	dir  string
	env  map[string]string
	base string
	// client trusts the cluster's self-signed certificate and speaks
	// HTTP/2 to Nginx.
	client *http.Client
}

// startCluster brings the topology up in a fresh directory with the
// extra environment (edge rates, YOLDA_* settings) and takes it down when
// the test ends. It needs nginx and the rest cluster.sh installs; without
// nginx it skips unless YOLDA_REQUIRE_SERVICES is set.
func startCluster(t *testing.T, extra ...string) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("the whole topology: not in -short")
	}
	if _, err := exec.LookPath("nginx"); err != nil {
		if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
			if os.Getenv("YOLDA_REQUIRE_SERVICES") != "" {
				t.Fatal("nginx is not installed and YOLDA_REQUIRE_SERVICES is set")
			}
			t.Skip("nginx not installed")
		}
	}
	dir, err := os.MkdirTemp("", "yolda-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	extra = append(extra, "YOLDA_BIN="+yoldaBinary(t), "NATS_SERVER="+natstest.Binary(t))
	script, _ := filepath.Abs("local/cluster.sh")
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, script, args...)
		cmd.Env = append(os.Environ(), extra...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out), fmt.Errorf("%v: %w\n%s", args, err, stderr.String())
		}
		return string(out), nil
	}
	t.Cleanup(func() {
		if _, err := run("down", dir); err != nil {
			t.Errorf("cluster down: %v", err)
		}
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("cluster directory kept: %s", dir)
		}
	})
	out, err := run("up", dir)
	if err != nil {
		t.Fatalf("cluster up: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	c := &cluster{dir: dir, base: lines[len(lines)-1], env: map[string]string{}}
	f, err := os.Open(filepath.Join(dir, "cluster.env"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			c.env[k] = v
		}
	}
	if c.env["NGINX_URL"] != c.base {
		t.Fatalf("the last line %q is not the Nginx URL %q of cluster.env", c.base, c.env["NGINX_URL"])
	}
	pem, err := os.ReadFile(c.env["NGINX_CERT"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 100,
	}}
	return c
}

// script runs cluster.sh COMMAND DIR ARGS....
func (c *cluster) script(t *testing.T, args ...string) string {
	t.Helper()
	script, _ := filepath.Abs("local/cluster.sh")
	cmd := exec.Command(script, append([]string{args[0], c.dir}, args[1:]...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cluster.sh %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// yolda runs the cluster's yolda binary with its stores' settings.
func (c *cluster) yolda(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(c.env["YOLDA"], args...)
	cmd.Env = append(os.Environ(), "YOLDA_DATABASE_URL="+c.env["DATABASE_URL"], "YOLDA_NATS_URL="+c.env["NATS_URLS"],
		"YOLDA_REDIS_URL="+c.env["REDIS_URL"], "YOLDA_JWT_SECRET="+c.env["JWT_SECRET"], "YOLDA_DATA_DIR="+filepath.Join(c.dir, "cli"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("yolda %v: %v\n%s", args, err, out)
	}
	return string(out)
}

type answer struct {
	status int
	header http.Header
	body   string
	proto  string
}

func (c *cluster) do(t *testing.T, method, path, token, body string, headers ...string) answer {
	t.Helper()
	a, err := c.try(method, path, token, body, headers...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (c *cluster) try(method, path, token, body string, headers ...string) (answer, error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b), proto: resp.Proto}, nil
}

func (c *cluster) login(t *testing.T, user, password string) string {
	t.Helper()
	a := c.do(t, "POST", "/v1/auth/login", "", fmt.Sprintf(`{"username":%q,"password":%q}`, user, password))
	var m struct {
		AccessToken string `json:"access_token"`
	}
	if a.status != 200 || json.Unmarshal([]byte(a.body), &m) != nil {
		t.Fatalf("login %s: %d %s", user, a.status, a.body)
	}
	return m.AccessToken
}

// metric sums a counter over the processes of a role ("api") or one
// process ("api-1"), read from their operations listeners.
func (c *cluster) metric(t *testing.T, role, series string) float64 {
	t.Helper()
	var sum float64
	for entry := range strings.SplitSeq(c.env["OPS_ADDRS"], ",") {
		name, addr, _ := strings.Cut(entry, "=")
		if name != role && !strings.HasPrefix(name, role+"-") {
			continue
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue // a process killed by the test
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.HasPrefix(line, series+" ") {
				var v float64
				fmt.Sscan(strings.TrimPrefix(line, series+" "), &v)
				sum += v
			}
		}
	}
	return sum
}

type netDialer struct{}

func (netDialer) dial(addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, time.Second)
}
