// Package redistest connects tests to the Redis server of
// YOLDA_TEST_REDIS_URL (scripts/redis-test-server.sh starts one) and gives
// each test a key namespace of its own, deleted when it ends. Without the
// variable a test skips, unless YOLDA_REQUIRE_SERVICES is set (CI): then
// it fails.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// EnvURL names the test server's URL.
const EnvURL = "YOLDA_TEST_REDIS_URL"

// URL is the test server's URL, or the test skips (fails under
// YOLDA_REQUIRE_SERVICES).
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(EnvURL)
	if url == "" {
		if os.Getenv("YOLDA_REQUIRE_SERVICES") != "" {
			t.Fatal(EnvURL + " is not set and YOLDA_REQUIRE_SERVICES is")
		}
		t.Skip(EnvURL + " not set")
	}
	return url
}

// Client connects to the test server, closed when the test ends. Its
// context deadlines are honoured (ContextTimeoutEnabled), as in Yolda.
func Client(t testing.TB) *goredis.Client {
	t.Helper()
	url := URL(t)
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	opts.ContextTimeoutEnabled = true
	rdb := goredis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v", url, err)
	}
	return rdb
}

// Prefix is a fresh key namespace; its keys are deleted when the test
// ends.
func Prefix(t testing.TB, rdb goredis.UniversalClient) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := "yoldatest:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, p+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return p
}
