package natstest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ClusterName is the cluster's name, as clients see it.
const ClusterName = "natstest"

// Cluster is a JetStream cluster of nats-server processes on loopback.
type Cluster struct {
	// Servers are the nodes, named n1, n2, ...
	Servers []*Server
}

// StartCluster starts an n-node JetStream cluster (every node routes to
// every other) and returns once each node is healthy and the cluster has a
// meta leader that answers JetStream requests. The nodes are stopped when
// the test ends; if the test failed, the tail of each log is printed.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: cluster of %d nodes", n)
	}
	root := t.TempDir()
	var err error
	for attempt := range startAttempts {
		c := &Cluster{}
		for i := range n {
			name := fmt.Sprintf("n%d", i+1)
			s := newServer(t, Options{Name: name, Dir: filepath.Join(root, fmt.Sprintf("try%d", attempt), name)})
			s.port, s.httpPort, s.clusterPort = freePort(t), freePort(t), freePort(t)
			c.Servers = append(c.Servers, s)
		}
		for _, s := range c.Servers {
			conf := filepath.Join(s.dir, "nats-server.conf")
			if err := os.WriteFile(conf, []byte(c.config(s)), 0o644); err != nil {
				t.Fatal(err)
			}
			s.args = func() []string { return []string{"-c", conf, "-l", s.LogPath()} }
		}
		if err = c.start(); err == nil {
			return c
		}
		for _, s := range c.Servers {
			s.Kill()
		}
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	t.Fatalf("natstest: start cluster: %v", err)
	return nil
}

func (c *Cluster) start() error {
	for _, s := range c.Servers {
		if err := s.start(); err != nil {
			return err
		}
	}
	for _, s := range c.Servers {
		if err := s.waitReady(readyTimeout); err != nil {
			return err
		}
	}
	return c.waitMetaLeader(readyTimeout)
}

// config is the configuration file of node s.
func (c *Cluster) config(s *Server) string {
	var routes []string
	for _, o := range c.Servers {
		if o != s {
			routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats-route://127.0.0.1:%d", o.clusterPort)))
		}
	}
	return fmt.Sprintf(`server_name: %q
listen: "127.0.0.1:%d"
http: "127.0.0.1:%d"
jetstream {
  store_dir: %q
}
cluster {
  name: %q
  listen: "127.0.0.1:%d"
  routes: [%s]
}
`, s.name, s.port, s.httpPort, s.StoreDir(), ClusterName, s.clusterPort, strings.Join(routes, ", "))
}

// waitMetaLeader connects to the cluster and asks for the JetStream account
// info until an answer comes, which needs a meta leader.
func (c *Cluster) waitMetaLeader(timeout time.Duration) error {
	nc, err := nats.Connect(c.URLs(), nats.Name("natstest"), nats.Timeout(2*time.Second))
	if err != nil {
		return fmt.Errorf("connect to cluster: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	err = waitFor(context.Background(), timeout, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(actx)
		return err
	})
	if err != nil {
		return fmt.Errorf("no JetStream meta leader after %s: %w", timeout, err)
	}
	return nil
}

// URLs are the nodes' client URLs, comma-separated, as bus.Config.URL
// takes them.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// Server is the node with the given name, or nil.
func (c *Cluster) Server(name string) *Server {
	for _, s := range c.Servers {
		if s.name == name {
			return s
		}
	}
	return nil
}

// WaitHealthy waits until every running node reports itself healthy
// (meta group and every stream current), or fails the test.
func (c *Cluster) WaitHealthy(t testing.TB) {
	t.Helper()
	for _, s := range c.Servers {
		if !s.Running() {
			continue
		}
		if err := s.waitReady(readyTimeout); err != nil {
			t.Fatalf("natstest: %v\n%s", err, s.LogTail(logTailLines))
		}
	}
}
