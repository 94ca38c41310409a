package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/identity"
)

// The audit table refuses updates whatever the code above it does.
func TestAuditLogRefusesUpdates(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	e := audit.New(ctx, time.Now(), audit.UserRoleChanged, identity.Principal{UserID: "usr_x", Role: identity.Admin}, "usr_y", nil)
	if err := s.AppendAudit(ctx, e); err != nil {
		t.Fatal(err)
	}
	_, err := s.Pool().Exec(ctx, `UPDATE audit_log SET actor_id = 'someone else'`)
	if err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("update of an audit row: %v", err)
	}
	got, _ := s.AuditEvents(ctx, audit.Filter{Limit: 10})
	if len(got) != 1 || got[0].ActorID != "usr_x" {
		t.Errorf("audit row changed: %+v", got)
	}
}
