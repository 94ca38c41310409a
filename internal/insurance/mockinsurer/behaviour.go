package mockinsurer

import (
	"fmt"
	"math"
	"time"
)

// Modes of a Behaviour.
const (
	// ModeOK answers after the latency; ErrorRate of the calls get a 500.
	ModeOK = "ok"
	// ModeDown answers at once with a 503, or drops the connection without an
	// answer, as DownStyle says: an insurer whose gateway is up but whose
	// backend is not, or whose load balancer resets connections.
	ModeDown = "down"
	// ModeHang reads the request and never answers, until the client gives
	// up or the Server is closed: the failure that only a timeout catches.
	ModeHang = "hang"
	// ModeGarbage answers 200 after the latency with a body that is not the
	// verify answer (invalid JSON, wrong types, wrong shape), rotating.
	ModeGarbage = "garbage"
)

// Down styles of a Behaviour.
const (
	// DownAlternate answers the 1st, 3rd, 5th... down-mode call with a 503
	// and drops the connection of the 2nd, 4th, 6th..., so one outage shows
	// the caller both kinds of failure.
	DownAlternate = "alternate"
	// Down503 answers every down-mode call with a 503.
	Down503 = "503"
	// DownClose drops the connection of every down-mode call.
	DownClose = "close"
)

// Behaviour says how the Server answers POST /policies/verify. The zero
// Behaviour answers every call at once with a success.
//
// The latency of a call is drawn uniformly from [Latency-Jitter,
// Latency+Jitter] (clamped at zero). It applies to ok and garbage answers,
// including the ErrorRate 500s (a failing backend is rarely fast), but not to
// 400s, 401s or down-mode answers, which a gateway gives at once.
//
// In down and hang modes the request is not authenticated or validated: the
// insurer is not there to do it.
type Behaviour struct {
	Mode      string        // ModeOK (also ""), ModeDown, ModeHang or ModeGarbage
	Latency   time.Duration // mean latency of an answer
	Jitter    time.Duration // latency varies uniformly by up to ± Jitter
	ErrorRate float64       // fraction of ok-mode calls answered 500, in [0, 1]
	DownStyle string        // DownAlternate (also ""), Down503 or DownClose

	// Seed seeds the random source behind error rolls, jitter and
	// references, so a run can be repeated call for call. New replaces 0 by a
	// random seed, which Behaviour then reports; Set keeps the current source
	// when Seed is 0 or unchanged and reseeds otherwise.
	Seed uint64

	// APIKey, when not empty, is required in the X-Api-Key header.
	APIKey string
	// Bearer, when not empty, is required as "Authorization: Bearer <Bearer>".
	// When both are set, both are required.
	Bearer string
}

// Validate reports the first field of b that the Server cannot obey.
func (b Behaviour) Validate() error {
	switch b.Mode {
	case "", ModeOK, ModeDown, ModeHang, ModeGarbage:
	default:
		return fmt.Errorf("mode: %q is not one of ok, down, hang, garbage", b.Mode)
	}
	switch b.DownStyle {
	case "", DownAlternate, Down503, DownClose:
	default:
		return fmt.Errorf("down_style: %q is not one of alternate, 503, close", b.DownStyle)
	}
	if b.Latency < 0 {
		return fmt.Errorf("latency: %s is negative", b.Latency)
	}
	if b.Jitter < 0 {
		return fmt.Errorf("jitter: %s is negative", b.Jitter)
	}
	if math.IsNaN(b.ErrorRate) || b.ErrorRate < 0 || b.ErrorRate > 1 {
		return fmt.Errorf("error_rate: %v is not between 0 and 1", b.ErrorRate)
	}
	return nil
}

func (b Behaviour) normalised() Behaviour {
	if b.Mode == "" {
		b.Mode = ModeOK
	}
	if b.DownStyle == "" {
		b.DownStyle = DownAlternate
	}
	return b
}
