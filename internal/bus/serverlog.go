package bus

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats-server/v2/server"
)

// levelTrace is below Debug: the server's protocol tracing is only wanted
// when someone asks for it explicitly.
const levelTrace = slog.LevelDebug - 4

// serverLogger routes the embedded server's logs to our logger, so one
// process writes one log stream in one format.
type serverLogger struct{ log *slog.Logger }

var _ server.Logger = serverLogger{}

// Noticef is the embedded server's start-up banner and lifecycle chatter
// (thirty lines at every start): debug, since the bus logs at info what a
// reader needs ("broker connected", "broker ready").
func (l serverLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
func (l serverLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l serverLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l serverLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l serverLogger) Tracef(format string, v ...any)  { l.logf(levelTrace, format, v) }

// Fatalf logs at error level and nothing more: the server calls it when it
// cannot start (JetStream storage, for example), and that must surface as an
// error from Connect, not end our process.
func (l serverLogger) Fatalf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...), "fatal", true)
}

func (l serverLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return // skip the formatting: the server logs a lot at debug
	}
	l.log.Log(ctx, level, fmt.Sprintf(format, v...))
}
