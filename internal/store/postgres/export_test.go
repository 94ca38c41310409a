package postgres

import "time"

// SetListenHealthEvery shortens s's listener's quiet period before a ping.
// Call it before ListenOutbox.
func SetListenHealthEvery(s *Store, d time.Duration) { s.listen.healthEvery = d }

// ListenPings is how often s's listener has pinged a quiet connection.
func ListenPings(s *Store) int64 { return s.listenPings.Load() }

// DropListenProbe makes s's listener send its test notification where
// nobody listens, as a connection pooler in transaction mode loses it, and
// shortens how long it waits for it and before trying again.
func DropListenProbe(s *Store, wait time.Duration) {
	s.probeSQL = `SELECT pg_notify('yolda_nowhere', $1)`
	s.listen.probeTimeout, s.listen.noDeliveryRetry = wait, wait
}
