package app

import (
	"context"
	"time"

	"github.com/yolda/yolda/internal/config"
)

// BenchFirstOffers is what `yolda bench pipeline` reads from the database
// of dataDir (or databaseURL): the first offers of ids and the outbox's
// rows.
func BenchFirstOffers(ctx context.Context, dataDir, databaseURL string, ids []string) (map[string]time.Duration, int64, error) {
	cfg := config.Defaults()
	cfg.DataDir, cfg.DatabaseURL = dataDir, databaseURL
	db, err := openBenchDB(ctx, cfg)
	if err != nil {
		return nil, 0, err
	}
	defer db.close()
	got, err := db.FirstOffers(ctx, ids)
	if err != nil {
		return nil, 0, err
	}
	n, err := db.outboxRows(ctx)
	return got, n, err
}
