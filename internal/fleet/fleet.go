// Package fleet is the drivers' side of dispatch: who drives what for which
// provider, who is online, where everyone is, and which drivers could take
// a job now. It owns the one rule of what a vehicle can do (CanServe), the
// position index port (Index) and the driver store port (Store).
//
// It is not dispatch: offers, assignment and job progress are built on top
// of it (they ask Candidates for drivers and call Refresh after every commit
// that makes a driver busy or free). Positions never go through the SQL
// store: they live in the Index, which is hot, volatile data.
package fleet

import (
	"errors"
	"regexp"
	"time"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

var (
	// ErrNotFound: no driver (or provider) of that id.
	ErrNotFound = errors.New("driver not found")
	// ErrForbidden: the caller's role may not do this.
	ErrForbidden = errors.New("forbidden")
	// ErrProviderExists: a provider with that code exists already.
	ErrProviderExists = errors.New("provider exists")
	// ErrUnknownProvider: the provider code names no provider.
	ErrUnknownProvider = errors.New("unknown provider")
)

// Availability is whether a driver takes jobs.
type Availability string

const (
	Online  Availability = "online"
	Offline Availability = "offline"
)

// Availabilities lists every availability.
var Availabilities = []Availability{Online, Offline}

// Provider is a towing or service company that drivers work for.
type Provider struct {
	Code      string    `json:"code"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"-"`
}

var providerCodeRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{1,31}$`)

// ValidProviderCode reports whether code is a well-formed provider code.
func ValidProviderCode(code string) bool { return providerCodeRe.MatchString(code) }

// NewProvider validates a provider as an operator or the CLI gives it.
func NewProvider(code, name string, now time.Time) (Provider, error) {
	var errs validate.Errors
	if !ValidProviderCode(code) {
		errs.Add("code", "must be 2-32 characters: lower-case letters, digits, '_' or '-'")
	}
	p := Provider{Code: code, Name: errs.Text("name", name, true, 120), CreatedAt: now.UTC().Truncate(time.Microsecond)}
	return p, errs.Err()
}

// Driver is a driver account as dispatch and operators see it: the profile
// (from the account), the provider, and the durable state. Its position is
// not here: that is in the Index.
type Driver struct {
	ID           string
	Username     string
	Name         string
	VehiclePlate string
	VehicleKind  VehicleKind
	Capabilities []intake.ServiceType
	Provider     *Provider
	Availability Availability
	// CurrentRequestID is the open request (assigned .. in_service) the
	// driver is on, derived from the requests table, which is the truth
	// (its partial unique index allows one open job per driver).
	CurrentRequestID string
	// StateVersion grows with every durable change of the driver's state
	// (availability, a Refresh after a job started or ended); the Index
	// uses it to ignore a state that was read before a newer one.
	StateVersion int64
	UpdatedAt    time.Time
}

// State is what the Index needs to filter this driver.
func (d Driver) State() State {
	return State{
		Online:  d.Availability == Online,
		Busy:    d.CurrentRequestID != "",
		Skills:  SkillsOf(d.VehicleKind, d.Capabilities),
		Version: d.StateVersion,
	}
}
