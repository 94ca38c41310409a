// Package intake is the Request Service of the founding design: it accepts
// assistance requests, keeps their state machine, and answers who may see
// or change which request. It stores through the Store it is given and
// announces every change through outbox messages written in the same
// transaction; it never talks to a broker, an insurer or a driver itself.
package intake

import (
	"encoding/json"
	"time"

	"github.com/yolda/yolda/internal/validate"
)

// ServiceType is the kind of help asked for.
type ServiceType string

const (
	Tow          ServiceType = "tow"
	JumpStart    ServiceType = "jump_start"
	FlatTire     ServiceType = "flat_tire"
	FuelDelivery ServiceType = "fuel_delivery"
	Lockout      ServiceType = "lockout"
	Winch        ServiceType = "winch"
)

// ServiceTypes lists every service type.
var ServiceTypes = []ServiceType{Tow, JumpStart, FlatTire, FuelDelivery, Lockout, Winch}

// Enum lists the values (validate.Enumerated: validation and the OpenAPI
// document).
func (ServiceType) Enum() []string { return names(ServiceTypes) }

// VehicleType is the class of the broken-down vehicle.
type VehicleType string

// VehicleTypes lists every vehicle type.
var VehicleTypes = []VehicleType{"car", "motorcycle", "light_commercial", "heavy"}

// Enum lists the values.
func (VehicleType) Enum() []string { return names(VehicleTypes) }

// InsuranceStatus is where the policy check stands.
type InsuranceStatus string

const (
	InsurancePending      InsuranceStatus = "pending"
	InsuranceApproved     InsuranceStatus = "approved"
	InsuranceRejected     InsuranceStatus = "rejected"
	InsuranceManualReview InsuranceStatus = "manual_review"
	InsuranceWaived       InsuranceStatus = "waived"
)

// InsuranceStatuses lists every insurance status.
var InsuranceStatuses = []InsuranceStatus{InsurancePending, InsuranceApproved, InsuranceRejected, InsuranceManualReview, InsuranceWaived}

// Decisions are the outcomes an operator may settle the insurance
// question with.
var Decisions = []InsuranceStatus{InsuranceWaived, InsuranceRejected}

// Enum lists the values.
func (InsuranceStatus) Enum() []string { return names(InsuranceStatuses) }

func names[T ~string](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = string(x)
	}
	return out
}

// Location is a point with its human description. Province and district
// drive the reports, so intake keeps them as given.
type Location struct {
	Lat      float64 `json:"lat"`
	Lng      float64 `json:"lng"`
	Address  string  `json:"address,omitempty"`
	Province string  `json:"province,omitempty"`
	District string  `json:"district,omitempty"`
}

// Vehicle is the customer's vehicle. Its `validate` tags are the rules of
// a submission (see Submission). Plate is stored in its canonical spelling
// (validate.CanonicalPlate).
type Vehicle struct {
	Plate string      `json:"plate" validate:"required,max=16,line"`
	Make  string      `json:"make,omitempty" validate:"max=64,line"`
	Model string      `json:"model,omitempty" validate:"max=64,line"`
	Type  VehicleType `json:"type" validate:"required"`
	// ForeignPlate flags a plate that is not of the standard Turkish
	// form: a foreign car (or a typo) an operator may want to look at. It
	// is worked out from Plate whenever the vehicle is shown, and shown
	// only when raised; clients do not send it.
	ForeignPlate bool `json:"foreign_plate,omitempty" validate:"readonly"`
}

// MarshalJSON shows the vehicle with ForeignPlate worked out from the
// plate, so that every representation (API, events) agrees with the
// stored plate whatever built the value.
func (v Vehicle) MarshalJSON() ([]byte, error) {
	type plain Vehicle
	p := plain(v)
	p.ForeignPlate = !validate.TurkishPlate(validate.CanonicalPlate(v.Plate))
	return json.Marshal(p)
}

// Policy names the insurance policy that pays for the job.
type Policy struct {
	Insurer      string `json:"insurer" validate:"required,max=64,line"`
	PolicyNumber string `json:"policy_number" validate:"required,max=64,line"`
}

// Contact is who the driver calls on arrival.
type Contact struct {
	Name  string `json:"name" validate:"required,max=120,line"`
	Phone string `json:"phone" validate:"required,max=32,line"`
}

// Insurance is the outcome of the policy check.
type Insurance struct {
	Status    InsuranceStatus `json:"status"`
	CheckedAt *time.Time      `json:"checked_at"`
	Reason    *string         `json:"reason"`
	Coverage  json.RawMessage `json:"coverage"`
	Reference *string         `json:"reference"`
	// Flags are what operators should look at: a service or a tow
	// distance the policy does not cover, a rejection after dispatch.
	Flags []string `json:"flags"`
}

// Position is where a driver was at a moment.
type Position struct {
	Lat float64   `json:"lat"`
	Lng float64   `json:"lng"`
	At  time.Time `json:"at"`
}

// Assignment is the driver on the job.
type Assignment struct {
	DriverID       string    `json:"driver_id"`
	DriverName     string    `json:"driver_name"`
	VehiclePlate   string    `json:"vehicle_plate"`
	AssignedAt     time.Time `json:"assigned_at"`
	ETASeconds     int       `json:"eta_seconds"`
	DriverLocation *Position `json:"driver_location"`
}

// TimelineEntry records one status the request went through.
type TimelineEntry struct {
	Status  Status    `json:"status"`
	At      time.Time `json:"at"`
	ActorID string    `json:"-"`
	Reason  string    `json:"reason,omitempty"`
	// Version is the request's version after the change that recorded
	// the entry (the seq of its request.status_changed event; both entries
	// written at creation are at 1). The store sets it from the request
	// when it writes the entry; what a client that resumes after seq n
	// is sent are the entries above n. Zero on entries written before
	// the store kept it.
	Version int `json:"-"`
}

// Request is an assistance request as stored and as shown (the JSON shape
// is the contract's request representation).
type Request struct {
	ID string `json:"id"`
	// OwnerID is the account that asked for help: a customer, or the
	// operator who took the call.
	OwnerID     string          `json:"-"`
	Status      Status          `json:"status"`
	ServiceType ServiceType     `json:"service_type"`
	Location    Location        `json:"location"`
	Destination *Location       `json:"destination"`
	Vehicle     Vehicle         `json:"vehicle"`
	Policy      Policy          `json:"policy"`
	Contact     Contact         `json:"contact"`
	Notes       string          `json:"notes"`
	Insurance   Insurance       `json:"insurance"`
	Assignment  *Assignment     `json:"assignment"`
	Timeline    []TimelineEntry `json:"timeline"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`

	// Version is 1 at creation and advances by exactly one with every
	// stored change (Advance), in the change's transaction: the messages
	// of a change carry it as their seq, so consumers can order a
	// request's messages and drop stale ones.
	Version int `json:"-"`
}

// Advance starts a change of r made at at: its version goes up by one and
// it is updated at at. Every function given to Store.UpdateRequest that
// changes the request calls it once, before it builds the change's
// messages, so that they carry the version they announce; the store
// refuses a change that did not advance the version by exactly one.
func (r *Request) Advance(at time.Time) {
	r.Version++
	r.UpdatedAt = at
}
