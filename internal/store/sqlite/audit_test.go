package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/store/sqlite"
)

// The audit table refuses updates whatever the code above it does.
func TestAuditLogRefusesUpdates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "yolda.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	e := audit.New(ctx, time.Now(), audit.UserRoleChanged, identity.Principal{UserID: "usr_x", Role: identity.Admin}, "usr_y", nil)
	if err := s.AppendAudit(ctx, e); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `UPDATE audit_log SET actor_id = 'someone else'`)
	if err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("update of an audit row: %v", err)
	}
	got, _ := s.AuditEvents(ctx, audit.Filter{Limit: 10})
	if len(got) != 1 || got[0].ActorID != "usr_x" {
		t.Errorf("audit row changed: %+v", got)
	}
}
