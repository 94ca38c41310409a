package postgres

import "time"

// SetListenHealthEvery shortens the listener's quiet period before a ping
// and returns a function restoring it.
func SetListenHealthEvery(d time.Duration) (restore func()) {
	old := listenHealthEvery
	listenHealthEvery = d
	return func() { listenHealthEvery = old }
}
