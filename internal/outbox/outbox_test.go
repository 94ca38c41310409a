package outbox

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestNewEnvelope(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 123456000, time.FixedZone("TRT", 3*3600))
	m, err := New("events.request.created", "request.created", at, "req_1", Actor{ID: "usr_1", Role: "customer"},
		map[string]any{"b": 2, "a": []int{1}})
	if err != nil {
		t.Fatal(err)
	}
	var env Envelope
	if err := json.Unmarshal(m.Payload, &env); err != nil {
		t.Fatal(err)
	}
	if env.ID != m.ID || !strings.HasPrefix(env.ID, "msg_") || env.Type != "request.created" || env.Version != 1 ||
		env.RequestID != "req_1" || env.Actor.ID != "usr_1" || !env.OccurredAt.Equal(at) || env.OccurredAt.Location() != time.UTC {
		t.Errorf("envelope: %+v", env)
	}
	if string(env.Data) != `{"a":[1],"b":2}` {
		t.Errorf("data: %s", env.Data)
	}
	if strings.Count(string(m.Payload), `"data"`) != 1 {
		t.Errorf("payload has data twice: %s", m.Payload)
	}
	if m.Subject != "events.request.created" || !m.CreatedAt.Equal(at) {
		t.Errorf("message: %+v", m)
	}
	if _, err := New("x", "x", at, "", Actor{}, func() {}); err == nil {
		t.Error("unencodable data accepted")
	}
}
