package bus

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestServerNoticesStayOutOfInfo: at the default level, the embedded
// server's banner is not in the log; its warnings are.
func TestServerNoticesStayOutOfInfo(t *testing.T) {
	var buf bytes.Buffer
	l := serverLogger{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	l.Noticef("Starting nats-server")
	l.Warnf("disk %s almost full", "/x")
	if s := buf.String(); strings.Contains(s, "Starting nats-server") || !strings.Contains(s, "disk /x almost full") {
		t.Errorf("info-level log:\n%s", s)
	}
}
