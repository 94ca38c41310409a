package fleet

import (
	"context"
	"time"

	"github.com/yolda/yolda/internal/intake"
)

// Store keeps providers and the durable state of drivers (profiles are
// written by account.Store.CreateUser). Positions are not here. Every SQL
// store implements it and passes internal/store/storetest's fleet cases.
type Store interface {
	// CreateProvider inserts a provider; a taken code is
	// ErrProviderExists.
	CreateProvider(ctx context.Context, p Provider) error
	// Providers lists every provider by code.
	Providers(ctx context.Context) ([]Provider, error)
	// Driver returns one driver, or ErrNotFound (also for an account
	// that is not a driver).
	Driver(ctx context.Context, id string) (Driver, error)
	// Drivers returns up to f.Limit drivers matching f, by id.
	Drivers(ctx context.Context, f DriverFilter) ([]Driver, error)
	// SetAvailability changes a driver's availability, increments its
	// StateVersion and returns the driver as committed; ErrNotFound if
	// there is no such driver.
	SetAvailability(ctx context.Context, id string, a Availability, at time.Time) (Driver, error)
	// TouchDriver increments the driver's StateVersion and returns the
	// driver as read after that, in one transaction: a state that is
	// newer than any read before it (see Service.Refresh).
	TouchDriver(ctx context.Context, id string) (Driver, error)
}

// DriverFilter selects drivers for a list. Zero fields match everything.
type DriverFilter struct {
	Availability Availability
	// Capability keeps drivers that can do the service (the stored
	// capabilities agree with the vehicle kind: ValidateProfile).
	Capability intake.ServiceType
	Provider   string
	// After is a driver id: only drivers with greater ids (the cursor).
	After string
	Limit int
}

// OpenJobStatuses are the request statuses in which the driver is on the
// job: the ones of the stores' one-open-job-per-driver unique index.
var OpenJobStatuses = []intake.Status{intake.StatusAssigned, intake.StatusEnRoute, intake.StatusArrived, intake.StatusInService}
