// Package natstest runs real nats-server processes for tests: one server,
// or a JetStream cluster on loopback, which a test can kill (SIGKILL),
// stop and restart. The binary is built from the nats-server module that
// go.mod pins, so the tests need nothing but Go.
//
// It is for tests only; nothing outside _test.go files should import it.
package natstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Module is the Go module the server binary is built from.
const Module = "github.com/nats-io/nats-server/v2"

// buildTimeout bounds the build of the binary, a cold one included.
const buildTimeout = 5 * time.Minute

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the path of a nats-server executable built from the
// version of [Module] that the enclosing Go module pins. It is built once
// per test process and cached under os.TempDir, keyed by that version, so
// later test processes (and concurrent ones: the cached file appears by an
// atomic rename) reuse it.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() { binPath, binErr = binary() })
	if binErr != nil {
		t.Fatalf("natstest: nats-server binary: %v", binErr)
	}
	return binPath
}

func binary() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to build nats-server: %w", err)
	}
	gomod, err := output(ctx, goCmd, "", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module: cannot tell which nats-server version to build")
	}
	root := filepath.Dir(gomod)
	// The version as the module graph resolves it, with any replacement.
	mod, err := output(ctx, goCmd, root, "list", "-m",
		"-f", "{{.Version}}|{{with .Replace}}{{.Path}}|{{.Version}}{{end}}", Module)
	if err != nil {
		return "", err
	}
	version, replaced, _ := strings.Cut(mod, "|")
	if version == "" && replaced == "" {
		return "", fmt.Errorf("%s is not in the module graph of %s", Module, root)
	}
	// A replacement by a local directory has a path and no version.
	localReplace := replaced != "" && strings.HasSuffix(replaced, "|")

	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	dir := filepath.Join(os.TempDir(), "yolda-natstest")
	if localReplace {
		// Replaced by a local directory: its source may change under the
		// same version, so build afresh for this process.
		dir, err = os.MkdirTemp("", "natstest-bin-")
		if err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(mod))
	name := fmt.Sprintf("nats-server-%s-%s-%s-%s%s", sanitize(version), runtime.GOOS, runtime.GOARCH,
		hex.EncodeToString(sum[:4]), exe)
	path := filepath.Join(dir, name)
	if usable(ctx, path) {
		return path, nil
	}

	// Build next to the final name and rename: a concurrent test process
	// sees either no file or a complete one.
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d.%s.tmp%s", name, os.Getpid(), randHex(), exe))
	defer os.Remove(tmp)
	build := exec.CommandContext(ctx, goCmd, "build", "-o", tmp, Module)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", Module, root, err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		if usable(ctx, path) { // another process won the race
			return path, nil
		}
		return "", fmt.Errorf("install built binary: %w", err)
	}
	if !usable(ctx, path) {
		return "", fmt.Errorf("built %s does not run", path)
	}
	return path, nil
}

// usable reports whether path is a nats-server that runs.
func usable(ctx context.Context, path string) bool {
	if _, err := os.Stat(path); err != nil {
		return false
	}
	out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	return err == nil && bytes.Contains(out, []byte("nats-server"))
}

func output(ctx context.Context, goCmd, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out)), nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, s)
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
