package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// A declaration that timed out (a cluster still settling, a slow disk) is
// sent again; any other answer, or the caller giving up, ends it.
func TestUntilAnsweredRetriesOnlyTimeouts(t *testing.T) {
	timeout := fmt.Errorf("create stream: %w", context.DeadlineExceeded)
	for _, tc := range []struct {
		name      string
		answers   []error
		ctxDone   bool
		wantCalls int
		wantErr   error
	}{
		{"timeouts then created", []error{timeout, timeout, nil}, false, 3, nil},
		{"refused at once", []error{errors.New("stream name already in use")}, false, 1, nil},
		{"timeouts all along", []error{timeout, timeout, timeout, timeout, timeout}, false, ensureAttempts, context.DeadlineExceeded},
		{"caller gave up", []error{timeout, nil}, true, 1, context.DeadlineExceeded},
	} {
		ctx, cancel := context.WithCancel(t.Context())
		if tc.ctxDone {
			cancel()
		}
		calls := 0
		err := untilAnswered(ctx, func() error {
			calls++
			return tc.answers[calls-1]
		})
		cancel()
		if calls != tc.wantCalls {
			t.Errorf("%s: %d declarations, want %d", tc.name, calls, tc.wantCalls)
		}
		switch {
		case tc.name == "refused at once":
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: %v, want the refusal", tc.name, err)
			}
		case !errors.Is(err, tc.wantErr) && !(tc.wantErr == nil && err == nil):
			t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
	}
}
