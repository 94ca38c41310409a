// Package bus is Yolda's messaging backbone on NATS JetStream: it starts an
// embedded broker or connects to an external one, declares the streams,
// publishes with deduplication, and runs the consumers of every worker role.
//
// It is for moving jobs and events quickly and at least once. It is not a
// store of record: the database is the truth and the broker a fast copy of
// it, so nothing here may be the only place a fact lives. It does not know
// what a job means either: payloads are opaque bytes, and the dead-letter
// store is the caller's (see [ConsumerConfig.DeadLetter]). Plain, non-stream
// subjects (driver positions) are [Bus.Broadcast] and [Bus.Listen]; a
// process that wants a stream's messages for itself alone, from now on and
// without a durable cursor (every realtime gateway), uses [Bus.Follow].
// What one process sees and the others should (its insurer clients'
// health) goes on the [HealthBoard]: the last snapshot of each live
// process, forgotten [HealthTTL] after it was posted.
//
// # Broker
//
// With an empty [Config.URL] the process runs nats-server itself, with
// JetStream, file storage under DataDir/nats, no network listener and an
// in-process connection; its logs go to our slog logger. Otherwise it
// connects to the listed servers and reconnects forever.
//
// # Streams and durability
//
// [Bus.EnsureStreams] declares, idempotently:
//
//   - JOBS: subjects "jobs.>", work-queue retention (a message is removed
//     once acknowledged), file storage.
//   - EVENTS: subjects "events.>", limits retention with a maximum age
//     ([Config.EventsMaxAge], 7 days by default), file storage.
//
// Both keep a duplicate window ([Config.DuplicateWindow], 2 minutes by
// default) inside which a second message with the same Nats-Msg-Id is
// dropped, and have [Config.Replicas] replicas (1 embedded; 3 against a
// cluster by default). The broker keeps its default lazy fsync (every 2
// minutes): a process crash loses nothing, but a power or kernel failure can
// lose the acknowledged messages of the last interval. That is accepted
// because the outbox relay re-publishes recent rows at start, after a
// reconnect and when [Bus.StreamLastSeq] goes backwards, and the duplicate
// window drops those the broker still has. Two consequences for callers:
// the relay's re-publish horizon should not exceed the duplicate window, and
// after a broker restart the window only remembers messages still stored,
// so a job already consumed may come again; handlers are idempotent anyway.
//
// # Consumers
//
// [ConsumeBatch] runs one durable pull consumer with explicit acks and
// hands its handler batches of deliveries (what is buffered, up to
// [ConsumerConfig.BatchMax]) to apply in one transaction, acknowledging
// them together once it has committed; a batch the handler could not
// commit is handed over again one delivery at a time. It is how consumers
// whose effects are database writes are written. [Consume] hands one
// delivery at a time, for handlers that call out. See [ConsumerConfig] for
// how failures, retries, the delivery limit and the dead letter work; they
// are per delivery either way.
package bus
