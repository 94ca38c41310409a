package outbox

import (
	"errors"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	m, err := New(EventSubject(EventRequestCreated), EventRequestCreated, time.Now(), "req_1", SystemActor, map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	env, err := Decode(m.Payload)
	if err != nil || env.ID != m.ID || env.Type != EventRequestCreated || env.RequestID != "req_1" || string(env.Data) != `{"n":1}` {
		t.Fatalf("Decode = %+v, %v", env, err)
	}
	// A field this build does not know is ignored.
	if _, err := Decode([]byte(`{"id":"msg_1","type":"x","version":1,"added_later":true,"data":{}}`)); err != nil {
		t.Errorf("unknown field: %v", err)
	}
	for _, tc := range []struct {
		payload string
		want    error
	}{
		{`{"id":"msg_1","type":"x","version":2,"data":{}}`, ErrUnknownVersion},
		{`{"id":"msg_1","type":"x","data":{}}`, ErrUnknownVersion}, // no version: not a version-1 envelope
		{`{"type":"x","version":1}`, ErrMalformed},
		{`not json`, ErrMalformed},
	} {
		if _, err := Decode([]byte(tc.payload)); !errors.Is(err, tc.want) {
			t.Errorf("Decode(%s) = %v, want %v", tc.payload, err, tc.want)
		}
	}
}
