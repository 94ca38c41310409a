package app

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/config"
)

// accountServices builds the audit trail and the account service over it,
// as every command that touches accounts (serve, users ...) uses them.
func accountServices(cfg config.Config, store *openedStore, reg prometheus.Registerer, log *slog.Logger) (*account.Service, *audit.Service, error) {
	trail, err := audit.NewService(store, audit.Options{Retention: cfg.AuditRetention, Logger: log, Registerer: reg})
	if err != nil {
		return nil, nil, err
	}
	accounts, err := account.NewService(store, account.DefaultHasher(),
		account.WithAudit(trail), account.WithLogger(log), account.WithMetrics(reg),
		account.WithHashLimit(cfg.PasswordHashConcurrency, account.DefaultHashWait))
	if err != nil {
		return nil, nil, err
	}
	return accounts, trail, nil
}
