package postgres_test

import (
	"os"
	"testing"

	"github.com/yolda/yolda/internal/store/postgres/pgtest"
)

// Every test here needs PostgreSQL: without one, say so instead of
// passing on skips.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
