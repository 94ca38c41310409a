package natstest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

const (
	// readyTimeout bounds the wait for a started server to accept clients
	// with JetStream current (a restarted cluster node catching up included).
	readyTimeout = 45 * time.Second
	// stopTimeout is how long Stop waits for a graceful exit before it
	// kills the process.
	stopTimeout = 15 * time.Second
	// startAttempts is how often a start is tried with fresh ports when the
	// ones picked were taken in between.
	startAttempts = 4
	// logTailLines is how much of a server's log a failed test shows.
	logTailLines = 60
)

// errPortInUse: the server could not bind a port picked for it.
var errPortInUse = errors.New("port already in use")

// Options describe one server.
type Options struct {
	// Name is the server's name (server_name); "nats" if empty.
	Name string
	// Dir holds the server's files: store/ (JetStream), nats-server.log
	// and, in a cluster, nats-server.conf. t.TempDir() if empty.
	Dir string
	// Args are extra command-line arguments.
	Args []string
}

// Server is one nats-server process. Its client port, store and log stay the
// same across Kill, Stop and Restart. Methods are safe for concurrent use.
type Server struct {
	t    testing.TB
	bin  string
	name string
	dir  string
	args func() []string // the command line; fixed once the ports are

	port     int // client port
	httpPort int // monitoring: /healthz tells when JetStream is ready
	// clusterPort is the route port; 0 outside a cluster.
	clusterPort int

	mu   sync.Mutex
	proc *process // nil while not running
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done
}

// StartServer starts one nats-server with JetStream on a free loopback port
// (-js -sd <dir>/store -a 127.0.0.1 -p <port>) and returns once it accepts
// clients and JetStream is ready. It is stopped when the test ends; if the
// test failed, the tail of its log is printed.
func StartServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s := newServer(t, opts)
	var err error
	for range startAttempts {
		s.port, s.httpPort = freePort(t), freePort(t)
		if err = s.start(); err == nil {
			err = s.waitReady(readyTimeout)
		}
		if !errors.Is(err, errPortInUse) {
			break
		}
		s.Kill()
	}
	if err != nil {
		t.Fatalf("natstest: start %s: %v\n%s", s.name, err, s.LogTail(logTailLines))
	}
	return s
}

func newServer(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Name == "" {
		opts.Name = "nats"
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: Binary(t), name: opts.Name, dir: opts.Dir}
	s.args = func() []string {
		return append([]string{
			"-n", s.name,
			"-a", "127.0.0.1", "-p", strconv.Itoa(s.port),
			"-m", strconv.Itoa(s.httpPort),
			"-js", "-sd", s.StoreDir(),
			"-l", s.LogPath(),
		}, opts.Args...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("natstest: last lines of %s's log (%s):\n%s", s.name, s.LogPath(), s.LogTail(logTailLines))
		}
		s.Stop()
	})
	return s
}

// Name is the server's name, as stream info reports a leader or replica.
func (s *Server) Name() string { return s.name }

// URL is the server's client URL.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// Port is the client port.
func (s *Server) Port() int { return s.port }

// Dir holds the server's files.
func (s *Server) Dir() string { return s.dir }

// StoreDir is the JetStream store directory.
func (s *Server) StoreDir() string { return filepath.Join(s.dir, "store") }

// LogPath is the server's log file; it grows across restarts.
func (s *Server) LogPath() string { return filepath.Join(s.dir, "nats-server.log") }

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// PID is the process id, or 0 when not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Kill ends the process with SIGKILL, as a crash would, and waits for it
// to be gone. Nothing is flushed beyond what the server already wrote.
func (s *Server) Kill() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop asks the server to shut down (SIGTERM: it flushes and closes its
// stores), waits for it, and kills it if it takes too long.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return
	}
	if err := terminate(p.cmd.Process); err != nil {
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Restart starts the server again with the same ports, store and log (it
// stops it first if it runs) and waits until it is ready. A cluster node is
// ready once it has caught up with its streams.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	// The port was ours a moment ago; something else may hold it briefly.
	deadline := time.Now().Add(readyTimeout)
	for {
		if err = s.start(); err == nil {
			err = s.waitReady(time.Until(deadline))
		}
		if !errors.Is(err, errPortInUse) || time.Now().After(deadline) {
			break
		}
		s.Kill()
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("natstest: restart %s: %v\n%s", s.name, err, s.LogTail(logTailLines))
	}
}

// start launches the process without waiting for it to be ready.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return fmt.Errorf("%s is already running", s.name)
	}
	logf, err := os.OpenFile(s.LogPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "---- natstest: starting %s at %s\n", s.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(s.bin, s.args()...)
	cmd.Dir = s.dir
	// What the server prints before its log file is open (bad flags,
	// config errors) lands in the same file.
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := startProcess(cmd); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.proc = p
	return nil
}

// waitReady polls the server's /healthz until it answers 200 (accepting
// clients; JetStream enabled, its streams recovered, and in a cluster the
// meta group and every stream current), the process exits, or timeout.
func (s *Server) waitReady(timeout time.Duration) error {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%s is not running", s.name)
	}
	client := &http.Client{Timeout: time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", s.httpPort)
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for {
		select {
		case <-p.done:
			if s.logHas("address already in use") {
				return fmt.Errorf("%s exited (%v): %w", s.name, p.err, errPortInUse)
			}
			return fmt.Errorf("%s exited: %v", s.name, p.err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %s", s.name, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// LogTail is the last n lines of the server's log.
func (s *Server) LogTail(n int) string {
	f, err := os.Open(s.LogPath())
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	skipped := 0
	for sc.Scan() {
		if strings.Contains(sc.Text(), "Error trying to connect to route") {
			skipped++ // a dead peer: one line a second per route
			continue
		}
		lines = append(lines, sc.Text())
		if len(lines) > 4*n {
			lines = append(lines[:0], lines[len(lines)-n:]...)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if skipped > 0 {
		lines = append(lines, fmt.Sprintf("(%d lines \"Error trying to connect to route\" left out)", skipped))
	}
	return strings.Join(lines, "\n")
}

func (s *Server) logHas(text string) bool {
	b, err := os.ReadFile(s.LogPath())
	return err == nil && bytes.Contains(b, []byte(text))
}

// freePort finds a loopback TCP port nobody listens on. Another process may
// take it before the server binds it; starts retry with fresh ports then.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond every 50ms until it returns nil or timeout passes,
// returning its last error.
func waitFor(ctx context.Context, timeout time.Duration, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
