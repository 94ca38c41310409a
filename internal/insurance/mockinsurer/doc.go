// Package mockinsurer is a stand-in insurer that speaks the insurer API of
// the Yolda contract (POST /policies/verify) over real HTTP, so that demos and
// fault tests can exercise the insurer adapter, its timeouts, retries and
// circuit breaker against a server that is slow, failing, silent or broken on
// demand. Its behaviour can be changed while it runs, from Go (Set) or over
// HTTP (POST /control), so a test can stage an outage and a recovery.
//
// It is not a model of any real insurer's rules, not a load-testing target
// and not safe to expose: /control is unauthenticated by design, so that a
// demo can always reach it, and it should listen on loopback only.
//
// Endpoints:
//
//	POST /policies/verify  the insurer API; obeys the Behaviour
//	POST /control          partial update of the Behaviour; always answers
//	GET  /control          the Behaviour and the Stats; always answers
//
// Policies are answered by their number's prefix (case-sensitive), so tests
// can ask for a specific answer without configuring anything:
//
//	REJ...    not covered, reason "policy not found or lapsed"
//	NOTOW...  covered, but "tow" is not among the services (max_tow_km 0)
//	SHORT...  covered, every service, but max_tow_km is 10
//	anything  covered, every service, max_tow_km 100
package mockinsurer
