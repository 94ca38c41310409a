package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Errors of Decode. Neither goes away by delivering the message again.
var (
	// ErrMalformed: the payload is not an envelope (not JSON, or no id).
	ErrMalformed = errors.New("malformed envelope")
	// ErrUnknownVersion: the envelope's version is not one this build
	// reads (a newer producer). Its fields may mean something else, so it
	// is refused rather than read as version 1.
	ErrUnknownVersion = errors.New("unknown envelope version")
)

// Decode reads a job's or an event's envelope, as every consumer must:
// unknown fields are ignored, unknown versions refused. The data is left
// raw for the consumer to decode by type.
func Decode(payload []byte) (Envelope, error) {
	var env Envelope
	if err := json.Unmarshal(payload, &env); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if env.ID == "" {
		return Envelope{}, fmt.Errorf("%w: no id", ErrMalformed)
	}
	if env.Version != EnvelopeVersion {
		return Envelope{}, fmt.Errorf("%w: %s has version %d, this build reads %d", ErrUnknownVersion, env.ID, env.Version, EnvelopeVersion)
	}
	return env, nil
}
