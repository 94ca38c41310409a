package outbox

import "sync"

// Fresh reports whether a message about a request, whose envelope carries
// seq, should be applied by a consumer that has applied that request up to
// version applied. Messages of one request can arrive out of order (several
// relays publish at once; a publish that failed is retried after later
// rows went out) or again (a republication): a consumer that keeps a
// request's latest state applies only what is newer than what it has and
// stores seq with it, in the same transaction as its effect. A message with
// no seq is always fresh.
func Fresh(seq, applied int) bool { return seq == 0 || seq > applied }

// Versions is Fresh for a consumer that keeps requests' latest state in
// memory (the realtime gateway, a cache): it remembers, per request, the
// highest seq applied. Seq is also where such a consumer resumes from after
// a reconnect. Safe for concurrent use; the zero value is ready.
type Versions struct {
	mu      sync.Mutex
	applied map[string]int
}

// Apply reports whether env is fresh for its request and, if so, records
// its seq as applied. The caller applies env only when Apply returns true.
func (v *Versions) Apply(env Envelope) bool {
	if env.RequestID == "" || env.Seq == 0 {
		return true
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !Fresh(env.Seq, v.applied[env.RequestID]) {
		return false
	}
	if v.applied == nil {
		v.applied = map[string]int{}
	}
	v.applied[env.RequestID] = env.Seq
	return true
}

// Seq returns the highest seq applied for requestID (0: none).
func (v *Versions) Seq(requestID string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.applied[requestID]
}

// Forget drops what is remembered of requestID, once it has reached a final
// status and nothing more will come.
func (v *Versions) Forget(requestID string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.applied, requestID)
}
