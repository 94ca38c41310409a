package postgres_test

import (
	"testing"

	"github.com/yolda/yolda/internal/store/storetest"
)

func TestBatchConformance(t *testing.T) {
	storetest.RunBatch(t, func(t *testing.T) storetest.MessagingStore { return open(t) })
}
