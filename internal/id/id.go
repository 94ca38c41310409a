// Package id makes the opaque, time-ordered identifiers that Yolda hands out.
//
// An id is a short type prefix, an underscore and 26 Crockford base32
// characters: 48 bits of Unix milliseconds followed by 80 random bits (the
// ULID layout). Ids of one prefix sort by creation time as plain strings,
// which lets stores paginate on the primary key alone. Clients must treat
// them as opaque.
package id

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
	"time"
)

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// New returns a new id such as "req_01JDQ3M6Y9B1X4G0ZC5V7N2K8P" for prefix "req".
func New(prefix string, now time.Time) string {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(now.UnixMilli())<<16)
	// Only 10 random bytes are needed; crypto/rand.Read never fails on Linux.
	_, _ = rand.Read(raw[6:])

	var b strings.Builder
	b.Grow(len(prefix) + 1 + 26)
	b.WriteString(prefix)
	b.WriteByte('_')
	// 128 bits in 26 characters: the first character carries the top 3 bits.
	hi := binary.BigEndian.Uint64(raw[:8])
	lo := binary.BigEndian.Uint64(raw[8:])
	for i := 25; i >= 0; i-- {
		shift := uint(i * 5)
		var v uint64
		switch {
		case shift >= 64:
			v = hi >> (shift - 64)
		case shift > 59:
			v = lo>>shift | hi<<(64-shift)
		default:
			v = lo >> shift
		}
		b.WriteByte(crockford[v&31])
	}
	return b.String()
}

// Valid reports whether s looks like an id of the given prefix. Handlers use
// it to answer 404 early without a store round trip.
func Valid(prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok || len(rest) != 26 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if strings.IndexByte(crockford, rest[i]) < 0 {
			return false
		}
	}
	return true
}

// Time returns the creation time an id carries (millisecond precision), and
// whether s is an id at all. Ids stay opaque to clients; Yolda's own
// consumers may read the time, for example to place a row in its month
// before the event that created it has arrived.
func Time(s string) (time.Time, bool) {
	prefix, rest, ok := strings.Cut(s, "_")
	if !ok || !Valid(prefix, s) {
		return time.Time{}, false
	}
	// The first 10 characters hold the top 50 bits: 2 zero bits and the
	// 48-bit millisecond count.
	var ms uint64
	for i := 0; i < 10; i++ {
		ms = ms<<5 | uint64(strings.IndexByte(crockford, rest[i]))
	}
	return time.UnixMilli(int64(ms)).UTC(), true
}
