// Package pgtest gives tests a PostgreSQL database of their own: a fresh,
// empty schema in the server named by YOLDA_TEST_POSTGRES_URL, dropped when
// the test ends.
//
// Without YOLDA_TEST_POSTGRES_URL the test is skipped, unless
// YOLDA_REQUIRE_SERVICES is set (CI sets it), in which case it fails: CI
// must never pass by skipping. scripts/postgres-test-cluster.sh starts a
// throwaway server and prints a URL for it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable holding the test server's URL.
const EnvURL = "YOLDA_TEST_POSTGRES_URL"

// EnvRequire names the variable that turns a missing server into a failure.
const EnvRequire = "YOLDA_REQUIRE_SERVICES"

// BaseURL returns the test server's URL, or skips (fails under
// YOLDA_REQUIRE_SERVICES) when there is none.
func BaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		if os.Getenv(EnvRequire) != "" {
			t.Fatalf("%s is not set but %s is: PostgreSQL tests must run", EnvURL, EnvRequire)
		}
		t.Skipf("%s not set: skipping PostgreSQL test (scripts/postgres-test-cluster.sh starts a server)", EnvURL)
	}
	return u
}

// URL creates a fresh schema and returns a URL whose connections use it
// (search_path); the schema is dropped, with everything in it, when the
// test ends. Anything the test opens on the URL must be closed by then:
// register its Close with t.Cleanup after calling URL.
func URL(t testing.TB) string {
	t.Helper()
	u, _ := Schema(t)
	return u
}

// Schema is URL that also returns the schema's name.
func Schema(t testing.TB) (dbURL, schema string) {
	t.Helper()
	base := BaseURL(t)
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random schema name: %v", err)
	}
	schema = "yt_" + hex.EncodeToString(b[:])
	if err := admin(base, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		// A connection left open in a transaction would make DROP wait
		// for ever; fail the test instead.
		if err := admin(base, "SET lock_timeout = '30s'; DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	dbURL, err := WithSearchPath(base, schema)
	if err != nil {
		t.Fatalf("test url: %v", err)
	}
	return dbURL, schema
}

// WithSearchPath returns dbURL (a postgres:// URL or a key=value DSN) with
// its search_path set to schema.
func WithSearchPath(dbURL, schema string) (string, error) {
	if !strings.HasPrefix(dbURL, "postgres://") && !strings.HasPrefix(dbURL, "postgresql://") {
		return dbURL + " search_path=" + schema, nil
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func admin(dbURL, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// Main is the TestMain of a package whose every test needs PostgreSQL.
// Without YOLDA_TEST_POSTGRES_URL it runs none and says so, rather than
// passing on skips: go test then shows the package as "ok ...
// [no tests to run]", and with -v the line "SKIP: set
// YOLDA_TEST_POSTGRES_URL". Under YOLDA_REQUIRE_SERVICES it fails instead.
func Main(m *testing.M) int {
	if os.Getenv(EnvURL) == "" {
		if os.Getenv(EnvRequire) != "" {
			fmt.Printf("FAIL: %s is not set but %s is: PostgreSQL tests must run\n", EnvURL, EnvRequire)
			return 1
		}
		fmt.Printf("SKIP: set %s to run these PostgreSQL tests (scripts/postgres-test-cluster.sh starts a server)\n", EnvURL)
		// The go command's marker for a package that ran nothing.
		fmt.Println("testing: warning: no tests to run")
		return 0
	}
	return m.Run()
}
