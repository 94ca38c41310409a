package app

import (
	"testing"
	"time"

	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/insurance/checks"
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
	ops.next(statusOf(reqID))

	at := time.Now()
	call, err := outbox.New(outbox.EventSubject(outbox.EventInsuranceCall), outbox.EventInsuranceCall, at, reqID, outbox.SystemActor,
		checks.Call{Insurer: "anadolu", At: at, LatencyMs: 12.5, Outcome: "error", ErrorKind: "timeout", Attempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.p.store.EnqueueOutbox(t.Context(), []outbox.Message{call}); err != nil {
		t.Fatal(err)
	}
	// Committed after the call event: relayed after it.
	n.must(t, 200, "POST", "/v1/requests/"+reqID+"/cancel", custTok, map[string]string{"reason": "found help"})
	for name, c := range map[string]*client{"customer": cust, "operator": ops} {
		m, err := c.read()
		if err != nil {
			t.Fatal(err)
		}
		if m.str("type") != realtime.TypeStatus || m.str("request_id") != reqID || m.str("status") != "cancelled" || m.num("seq") <= first.num("seq") {
			t.Errorf("%s's next message after an insurance.call event: %v, want the cancellation", name, m)
		}
	}
}
