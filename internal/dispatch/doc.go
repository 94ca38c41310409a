// Package dispatch is the Dispatch Service of the founding design: it finds
// each dispatching request a driver (offers with a deadline, round after
// round with a wider radius), assigns it (a driver's accept or an
// operator's hand), and walks the job through its progress to completion.
//
// It is domain and use cases only: the position index, ETA estimates and
// batch matching come from the fleet through the small interfaces of
// ports.go, the database through Store, and the broker through whoever
// feeds Worker.Handle. The request state machine is intake's
// (intake.Transition); dispatch never moves a request any other way.
//
// Invariants and who keeps them:
//
//   - a driver is never on two open requests, a request never has two
//     drivers: Store.Assign's conditional updates, and the database's
//     partial unique indexes as the final guard;
//   - a driver holds at most one open offer, a request at most one: the
//     database's partial unique indexes (a decision that loses the race is
//     made again on fresh state);
//   - every dispatching request moves on: each offer ends (accepted,
//     declined, expired by the durable Expirer, withdrawn) and every end
//     that does not assign commits the next dispatch job in the same
//     transaction; a request with no driver in reach waits, then becomes
//     unfulfilled.
package dispatch
