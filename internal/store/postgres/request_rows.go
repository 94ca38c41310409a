package postgres

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// This file maps a request to its columns and back. Writes always go
// through requestArrays (one array per column, one element per request),
// for one request as for a batch of them, so that there is one typed
// encoding of a request and no per-column conversion to get wrong.

// requestColumns is every column of requests in the order of
// requestArrays.requestArgs and scanRequest.
var requestColumns = []string{"id", "owner_id", "status", "service_type",
	"lat", "lng", "address", "province", "district",
	"dest_lat", "dest_lng", "dest_address", "dest_province", "dest_district",
	"vehicle_plate", "vehicle_make", "vehicle_model", "vehicle_type", "insurer", "policy_number",
	"contact_name", "contact_phone", "notes",
	"insurance_status", "insurance_checked_at", "insurance_reason", "insurance_coverage", "insurance_reference", "insurance_flags",
	"driver_id", "driver_name", "driver_plate", "assigned_at", "eta_seconds",
	"created_at", "updated_at", "version"}

// requestTypes is the SQL type of each column, for the arrays that the
// writes unnest. Coverage travels as text and is cast to json, so the
// insurer's document is stored exactly as received.
var requestTypes = []string{"text", "text", "text", "text",
	"float8", "float8", "text", "text", "text",
	"float8", "float8", "text", "text", "text",
	"text", "text", "text", "text", "text", "text",
	"text", "text", "text",
	"text", "timestamptz", "text", "text", "text", "text",
	"text", "text", "text", "timestamptz", "int4",
	"timestamptz", "timestamptz", "int4"}

// selectRequestColumns reads the columns of r in requestColumns order.
var selectRequestColumns = columnList("r.", func(c string) string {
	if c == "insurance_coverage" {
		return "::text"
	}
	return ""
})

// unnestedRequestColumns reads the columns of an unnested requestArrays
// (aliased u) in requestColumns order, typed as the table wants them.
var unnestedRequestColumns = columnList("u.", func(c string) string {
	if c == "insurance_coverage" {
		return "::json"
	}
	return ""
})

func columnList(prefix string, cast func(string) string) string {
	cols := make([]string, len(requestColumns))
	for i, c := range requestColumns {
		cols[i] = prefix + c + cast(c)
	}
	return strings.Join(cols, ", ")
}

// requestParams returns the placeholders of requestArrays.requestArgs,
// numbered from first, each cast to its array type: "$1::text[], ...".
func requestParams(first int) string {
	ps := make([]string, len(requestTypes))
	for i, t := range requestTypes {
		ps[i] = "$" + strconv.Itoa(first+i) + "::" + t + "[]"
	}
	return strings.Join(ps, ", ")
}

// requestArrays holds requests (and what a creation batch writes with
// them) column by column, as the arrays that the write statements unnest.
type requestArrays struct {
	id, owner, status, service                  []string
	lat, lng                                    []float64
	address, province, district                 []string
	dLat, dLng                                  []*float64
	dAddress, dProvince, dDistrict              []*string
	plate, make_, model, vtype, insurer, policy []string
	contactName, contactPhone, notes            []string
	insStatus                                   []string
	checkedAt                                   []*time.Time
	reason, coverage, reference                 []*string
	flags                                       []string
	driverID, driverName, driverPlate           []*string
	assignedAt                                  []*time.Time
	eta                                         []*int32
	createdAt, updatedAt                        []time.Time
	version                                     []int32

	tlRequest         []string
	tlSeq             []int32
	tlStatus          []string
	tlAt              []time.Time
	tlActor, tlReason []string
	tlVersion         []int32

	obRequest, obID, obSubject []string
	obPayload                  [][]byte
	obAt                       []time.Time
}

// addRequest appends r's columns (not its timeline: see addTimeline).
func (a *requestArrays) addRequest(r *intake.Request) {
	a.id = append(a.id, r.ID)
	a.owner = append(a.owner, r.OwnerID)
	a.status = append(a.status, string(r.Status))
	a.service = append(a.service, string(r.ServiceType))
	a.lat = append(a.lat, r.Location.Lat)
	a.lng = append(a.lng, r.Location.Lng)
	a.address = append(a.address, r.Location.Address)
	a.province = append(a.province, r.Location.Province)
	a.district = append(a.district, r.Location.District)
	if d := r.Destination; d != nil {
		a.dLat = append(a.dLat, &d.Lat)
		a.dLng = append(a.dLng, &d.Lng)
		a.dAddress = append(a.dAddress, &d.Address)
		a.dProvince = append(a.dProvince, &d.Province)
		a.dDistrict = append(a.dDistrict, &d.District)
	} else {
		a.dLat, a.dLng = append(a.dLat, nil), append(a.dLng, nil)
		a.dAddress, a.dProvince, a.dDistrict = append(a.dAddress, nil), append(a.dProvince, nil), append(a.dDistrict, nil)
	}
	a.plate = append(a.plate, r.Vehicle.Plate)
	a.make_ = append(a.make_, r.Vehicle.Make)
	a.model = append(a.model, r.Vehicle.Model)
	a.vtype = append(a.vtype, string(r.Vehicle.Type))
	a.insurer = append(a.insurer, r.Policy.Insurer)
	a.policy = append(a.policy, r.Policy.PolicyNumber)
	a.contactName = append(a.contactName, r.Contact.Name)
	a.contactPhone = append(a.contactPhone, r.Contact.Phone)
	a.notes = append(a.notes, r.Notes)
	a.insStatus = append(a.insStatus, string(r.Insurance.Status))
	a.checkedAt = append(a.checkedAt, r.Insurance.CheckedAt)
	a.reason = append(a.reason, r.Insurance.Reason)
	a.coverage = append(a.coverage, coverageArg(r.Insurance.Coverage))
	a.reference = append(a.reference, r.Insurance.Reference)
	a.flags = append(a.flags, flagsArg(r.Insurance.Flags))
	if as := r.Assignment; as != nil {
		eta := int32(as.ETASeconds)
		a.driverID = append(a.driverID, &as.DriverID)
		a.driverName = append(a.driverName, &as.DriverName)
		a.driverPlate = append(a.driverPlate, &as.VehiclePlate)
		a.assignedAt = append(a.assignedAt, &as.AssignedAt)
		a.eta = append(a.eta, &eta)
	} else {
		a.driverID, a.driverName, a.driverPlate = append(a.driverID, nil), append(a.driverName, nil), append(a.driverPlate, nil)
		a.assignedAt, a.eta = append(a.assignedAt, nil), append(a.eta, nil)
	}
	a.createdAt = append(a.createdAt, r.CreatedAt)
	a.updatedAt = append(a.updatedAt, r.UpdatedAt)
	a.version = append(a.version, int32(r.Version))
}

// addTimeline appends one timeline entry of a request; seq counts from 1.
func (a *requestArrays) addTimeline(requestID string, seq, version int, e intake.TimelineEntry) {
	a.tlRequest = append(a.tlRequest, requestID)
	a.tlSeq = append(a.tlSeq, int32(seq))
	a.tlStatus = append(a.tlStatus, string(e.Status))
	a.tlAt = append(a.tlAt, e.At)
	a.tlActor = append(a.tlActor, e.ActorID)
	a.tlReason = append(a.tlReason, e.Reason)
	a.tlVersion = append(a.tlVersion, int32(version))
}

// addOutbox appends the outbox messages of a request.
func (a *requestArrays) addOutbox(requestID string, msgs []outbox.Message) {
	for _, m := range msgs {
		a.obRequest = append(a.obRequest, requestID)
		a.obID = append(a.obID, m.ID)
		a.obSubject = append(a.obSubject, m.Subject)
		a.obPayload = append(a.obPayload, nonNil(m.Payload))
		a.obAt = append(a.obAt, m.CreatedAt)
	}
}

// requestArgs are the column arrays, in requestColumns order.
func (a *requestArrays) requestArgs() []any {
	return []any{
		a.id, a.owner, a.status, a.service,
		a.lat, a.lng, a.address, a.province, a.district,
		a.dLat, a.dLng, a.dAddress, a.dProvince, a.dDistrict,
		a.plate, a.make_, a.model, a.vtype, a.insurer, a.policy,
		a.contactName, a.contactPhone, a.notes,
		a.insStatus, a.checkedAt, a.reason, a.coverage, a.reference, a.flags,
		a.driverID, a.driverName, a.driverPlate, a.assignedAt, a.eta,
		a.createdAt, a.updatedAt, a.version,
	}
}

// timelineArgs are the timeline arrays: request_id, seq, status, at,
// actor_id, reason.
func (a *requestArrays) timelineArgs() []any {
	return []any{a.tlRequest, a.tlSeq, a.tlStatus, a.tlAt, a.tlActor, a.tlReason, a.tlVersion}
}

// flagsArg stores flags as a JSON array: text keeps the writes a set of
// one-dimensional arrays.
func flagsArg(flags []string) string {
	if len(flags) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(flags) // strings always encode
	return string(b)
}

// nonNil turns a nil payload into an empty one (payload is NOT NULL).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func coverageArg(c []byte) *string {
	if len(c) == 0 {
		return nil
	}
	s := string(c)
	return &s
}

type rowScanner interface{ Scan(dest ...any) error }

// scanRequest scans the columns of selectRequestColumns followed by extra.
func scanRequest(row rowScanner, extra ...any) (intake.Request, error) {
	var (
		r                                 intake.Request
		status, service, vtype, insStatus string
		dLat, dLng                        *float64
		dAddr, dProv, dDist               *string
		checkedAt, assignedAt             *time.Time
		eta                               *int32
		coverage                          *string
		flags                             string
		driverID, driverName, driverPlate *string
		version                           int32
	)
	dest := []any{&r.ID, &r.OwnerID, &status, &service,
		&r.Location.Lat, &r.Location.Lng, &r.Location.Address, &r.Location.Province, &r.Location.District,
		&dLat, &dLng, &dAddr, &dProv, &dDist,
		&r.Vehicle.Plate, &r.Vehicle.Make, &r.Vehicle.Model, &vtype, &r.Policy.Insurer, &r.Policy.PolicyNumber,
		&r.Contact.Name, &r.Contact.Phone, &r.Notes,
		&insStatus, &checkedAt, &r.Insurance.Reason, &coverage, &r.Insurance.Reference, &flags,
		&driverID, &driverName, &driverPlate, &assignedAt, &eta,
		&r.CreatedAt, &r.UpdatedAt, &version}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return intake.Request{}, err
	}
	r.Status = intake.Status(status)
	r.ServiceType = intake.ServiceType(service)
	r.Vehicle.Type = intake.VehicleType(vtype)
	if dLat != nil {
		r.Destination = &intake.Location{Lat: *dLat, Lng: deref(dLng),
			Address: deref(dAddr), Province: deref(dProv), District: deref(dDist)}
	}
	r.Insurance.Status = intake.InsuranceStatus(insStatus)
	r.Insurance.CheckedAt = utcPtr(checkedAt)
	if coverage != nil {
		r.Insurance.Coverage = []byte(*coverage)
	}
	if err := json.Unmarshal([]byte(flags), &r.Insurance.Flags); err != nil {
		return intake.Request{}, fmt.Errorf("decode insurance flags: %w", err)
	}
	if driverID != nil {
		r.Assignment = &intake.Assignment{DriverID: *driverID, DriverName: deref(driverName),
			VehiclePlate: deref(driverPlate), ETASeconds: int(deref(eta))}
		if assignedAt != nil {
			r.Assignment.AssignedAt = assignedAt.UTC()
		}
	}
	r.CreatedAt, r.UpdatedAt = utc(r.CreatedAt), utc(r.UpdatedAt)
	r.Version = int(version)
	return r, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// timelineArrays receives a request's timeline aggregated into arrays.
type timelineArrays struct {
	status  []string
	at      []time.Time
	actor   []string
	reason  []string
	version []int32
}

func (t *timelineArrays) dest() []any {
	return []any{&t.status, &t.at, &t.actor, &t.reason, &t.version}
}

func (t *timelineArrays) fill(r *intake.Request) error {
	n := len(t.status)
	if len(t.at) != n || len(t.actor) != n || len(t.reason) != n || len(t.version) != n {
		return fmt.Errorf("request %s: timeline arrays of different lengths", r.ID)
	}
	r.Timeline = nil
	for i := range n {
		r.Timeline = append(r.Timeline, intake.TimelineEntry{Status: intake.Status(t.status[i]),
			At: t.at[i].UTC(), ActorID: t.actor[i], Reason: t.reason[i], Version: int(t.version[i])})
	}
	return nil
}

// timelineAggregates aggregates request_timeline rows into the columns
// timelineArrays.dest reads, in seq order.
const timelineAggregates = `array_agg(status ORDER BY seq), array_agg(at ORDER BY seq),
	array_agg(actor_id ORDER BY seq), array_agg(reason ORDER BY seq), array_agg(version ORDER BY seq)`
