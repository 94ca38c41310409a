package relay_test

import (
	"testing"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/relay"
)

// The libraries' defaults keep the invariant on their own: the broker
// remembers a message id for longer than the relay looks back to publish
// again, plus the lease after which a stalled relay's rows are published by
// another.
func TestDefaultDuplicateWindowCoversTheRelay(t *testing.T) {
	if need := relay.DefaultRepublishWindow + relay.DefaultLease; bus.DefaultDuplicateWindow < need {
		t.Errorf("bus.DefaultDuplicateWindow %s < republish window + lease %s", bus.DefaultDuplicateWindow, need)
	}
}
