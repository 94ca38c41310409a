package app

import (
	"testing"
	"time"

	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/realtime"
)

// The insurance role's insurance.call events travel on EVENTS like the
// others, but no client hears of them: neither the request's follower nor
// an operator following every request gets anything between the request's
// current status and its next change.
func TestRealtimeIgnoresInsuranceCallEvents(t *testing.T) {
	n := startNode(t, "api,relay,realtime", nil)
	n.addUser(t, identity.Customer, "ayse")
	n.addUser(t, identity.Operator, "ops")
	custTok, opsTok := n.login(t, "ayse"), n.login(t, "ops")
	reqID := n.createRequest(t, custTok)

	cust := dial(t, n, custTok)
	cust.send(map[string]any{"type": "subscribe", "request_id": reqID})
	first := cust.next(statusOf(reqID))
	ops := dial(t, n, opsTok)
	ops.send(map[string]any{"type": "subscribe", "request_id": realtime.AllRequests})
	// Following every request sends no current status; the subscription
	// is in place once the server answers a later one.
	ops.send(map[string]any{"type": "subscribe", "request_id": reqID})
	ops.next(statusOf(reqID))

	at := time.Now()
	call, err := outbox.New(outbox.EventSubject(outbox.EventInsuranceCall), outbox.EventInsuranceCall, at, reqID, outbox.SystemActor,
		insurance.Call{Insurer: "anadolu", At: at, LatencyMs: 12.5, Outcome: "error", ErrorKind: "timeout", Attempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.p.store.EnqueueOutbox(t.Context(), []outbox.Message{call}); err != nil {
		t.Fatal(err)
	}
	// Committed after the call event: relayed after it.
	n.must(t, 200, "POST", "/v1/requests/"+reqID+"/cancel", custTok, map[string]string{"reason": "found help"})
	// Until the cancellation, each may still get copies of the request's
	// earlier status (the operator follows it twice, the insurance answer
	// moves the version); nothing else.
	for name, c := range map[string]*client{"customer": cust, "operator": ops} {
		for {
			m, err := c.read()
			if err != nil {
				t.Fatal(err)
			}
			if m.str("type") != realtime.TypeStatus || m.str("request_id") != reqID {
				t.Fatalf("%s got %v after an insurance.call event, want only the request's statuses", name, m)
			}
			if m.str("status") == "cancelled" {
				if m.num("seq") <= first.num("seq") {
					t.Errorf("%s: the cancellation at version %v, not after %v", name, m.num("seq"), first.num("seq"))
				}
				break
			}
			if m.str("status") != "dispatching" {
				t.Fatalf("%s got %v after an insurance.call event, want the request's statuses", name, m)
			}
		}
	}
}
