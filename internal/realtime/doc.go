// Package realtime is the realtime gateway: the WebSocket connections of
// customers, drivers and operators (GET /v1/ws), and the fan-out that
// brings each of them what it may see as it happens: its requests' status
// changes, its assigned driver's positions (operators: every driver's),
// and, for drivers, the offers made to them.
//
// Every gateway process forwards to its own connections only. What one
// process hears, all hear: driver positions are broadcast between
// processes on plain broker subjects (Broadcast, HandlePosition), status
// changes and offers come from the EVENTS stream, which every process
// follows with its own cursor (HandleEvent). The package talks to no
// broker itself: the composition root moves the bytes.
//
// One client never slows another. Nothing on the fan-out path blocks on a
// connection: each has a bounded queue of status messages, which are
// never dropped (a client whose queue overflows is disconnected and
// resumes from the database), and one slot per driver for positions,
// which are conflated (a slow client gets the newest position, never a
// backlog). A connection writes from a goroutine that exists only while
// it has something to write.
//
// It is not a store: what a client missed while away is read from the
// database (the request's timeline, whose entries carry the request's
// version) when it resumes. docs/realtime.md is the protocol.
package realtime
