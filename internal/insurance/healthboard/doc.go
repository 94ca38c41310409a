// Package healthboard shares the insurers' health between the processes
// of a deployment. Only a process running the insurance role calls the
// insurers, so only its clients know whether an insurer's breaker is open;
// the API that operators ask (GET /v1/insurers) may be another process.
// Each insurance process's Publisher posts its clients' health to a board
// every few seconds and at once on a breaker transition; View merges what
// every live process posted: the worst breaker, calls and errors summed,
// the error rate and latencies weighted by the calls they summarise.
//
// The board is the broker's (bus.HealthBoard); this package declares the
// little it needs of it and imports no adapter.
package healthboard
