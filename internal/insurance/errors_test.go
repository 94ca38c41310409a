package insurance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestKindOfRawErrors(t *testing.T) {
	t.Parallel()
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		err       error
		kind      string
		retryable bool
	}{
		{nil, "", false},
		{context.DeadlineExceeded, KindTimeout, true},
		{fmt.Errorf("post: %w", context.Canceled), KindCanceled, false},
		{opErr, KindRefused, true},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), KindRefused, true},
		{io.ErrUnexpectedEOF, KindRefused, true},
		{&net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, KindRefused, true},
		{errors.New("something odd"), KindOther, false},
		{fmt.Errorf("%w: status 503", ErrServer), KindServer, true},
		{fmt.Errorf("%w: status 404", ErrClient), KindClient, false},
		{fmt.Errorf("x: %w", ErrBadPayload), KindBadPayload, false},
		{ErrUnavailable, KindUnavailable, false},
		{ErrBulkheadFull, KindBulkheadFull, false},
		{WithKind(ErrCanceled, context.DeadlineExceeded), KindCanceled, false},
	}
	for _, tt := range tests {
		if got := Kind(tt.err); got != tt.kind {
			t.Errorf("Kind(%v) = %q, want %q", tt.err, got, tt.kind)
		}
		if got := Retryable(tt.err); got != tt.retryable {
			t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.retryable)
		}
	}

	// Classify adds the sentinel, keeps the cause and the message.
	err := Classify(context.Background(), opErr)
	if !errors.Is(err, ErrRefused) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Classify(refused) = %v", err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Classify(done, fmt.Errorf("%w: 503", ErrServer)); Kind(err) != KindCanceled {
		t.Errorf("classify with the caller gone = %v (kind %s), want canceled", err, Kind(err))
	}
}
