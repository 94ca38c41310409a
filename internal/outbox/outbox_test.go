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

func TestNewMessageCarriesSeq(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	m, err := NewMessage("events.request.status_changed", Envelope{Type: "request.status_changed", OccurredAt: at,
		RequestID: "req_1", Seq: 7, Actor: SystemActor}, map[string]string{"to": "cancelled"})
	if err != nil {
		t.Fatal(err)
	}
	var env Envelope
	if err := json.Unmarshal(m.Payload, &env); err != nil {
		t.Fatal(err)
	}
	if env.Seq != 7 || env.ID != m.ID || env.Version != EnvelopeVersion {
		t.Errorf("envelope: %+v", env)
	}
	plain, _ := New("x", "x", at, "req_1", Actor{}, nil)
	if strings.Contains(string(plain.Payload), `"seq"`) {
		t.Errorf("a message without a version names one: %s", plain.Payload)
	}
}

func TestVersionsDropStaleAndOutOfOrder(t *testing.T) {
	var v Versions
	env := func(req string, seq int) Envelope { return Envelope{RequestID: req, Seq: seq} }
	steps := []struct {
		env  Envelope
		want bool
	}{
		{env("a", 1), true},
		{env("a", 3), true},  // 2 is late
		{env("a", 2), false}, // stale by now
		{env("a", 3), false}, // a republished copy
		{env("b", 1), true},  // another request is separate
		{env("a", 4), true},
		{env("a", 0), true}, // no version: always applied
	}
	for i, s := range steps {
		if got := v.Apply(s.env); got != s.want {
			t.Errorf("step %d %+v: Apply = %v, want %v", i, s.env, got, s.want)
		}
	}
	if v.Seq("a") != 4 || v.Seq("b") != 1 || v.Seq("c") != 0 {
		t.Errorf("seqs: a=%d b=%d c=%d", v.Seq("a"), v.Seq("b"), v.Seq("c"))
	}
	v.Forget("a")
	if v.Seq("a") != 0 || !v.Apply(env("a", 1)) {
		t.Error("Forget kept the request")
	}
}
