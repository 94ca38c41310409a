package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/yolda/yolda/internal/intake"
)

// This file maps a request to its columns and back.

// requestColumns is every column of requests in the order of requestArgs
// and scanRequest.
const requestColumns = `id, owner_id, status, service_type, lat, lng, address, province, district,
	dest_lat, dest_lng, dest_address, dest_province, dest_district,
	vehicle_plate, vehicle_make, vehicle_model, vehicle_type, insurer, policy_number,
	contact_name, contact_phone, notes,
	insurance_status, insurance_checked_at, insurance_reason, insurance_coverage, insurance_reference, insurance_flags,
	driver_id, driver_name, driver_plate, assigned_at, eta_seconds,
	created_at, updated_at, version`

// insertRequestSQL inserts one request from requestArgs.
var insertRequestSQL = `INSERT INTO requests (` + requestColumns + `) VALUES (` +
	strings.TrimSuffix(strings.Repeat("?,", len(strings.Split(requestColumns, ","))), ",") + `)`

// updateRequestSQL sets every column but id from requestArgs[1:], then
// takes the id and the version the change was made on: a row is written
// only over that version.
var updateRequestSQL = func() string {
	cols := strings.Split(requestColumns, ",")
	sets := make([]string, 0, len(cols)-1)
	for _, c := range cols[1:] {
		sets = append(sets, strings.TrimSpace(c)+" = ?")
	}
	// A change ends the request's wait: the sweeper's schedule, count and
	// stuck flag start again.
	sets = append(sets, "next_nudge_at = NULL", "nudges = 0", "stuck_at = NULL")
	return `UPDATE requests SET ` + strings.Join(sets, ", ") + ` WHERE id = ? AND version = ?`
}()

func requestArgs(r *intake.Request) []any {
	var dLat, dLng sql.NullFloat64
	var dAddr, dProv, dDist sql.NullString
	if d := r.Destination; d != nil {
		dLat, dLng = sql.NullFloat64{Float64: d.Lat, Valid: true}, sql.NullFloat64{Float64: d.Lng, Valid: true}
		dAddr, dProv, dDist = nullString(&d.Address), nullString(&d.Province), nullString(&d.District)
	}
	var coverage sql.NullString
	if len(r.Insurance.Coverage) > 0 {
		coverage = sql.NullString{String: string(r.Insurance.Coverage), Valid: true}
	}
	var driverID, driverName, driverPlate sql.NullString
	var assignedAt, eta sql.NullInt64
	if a := r.Assignment; a != nil {
		driverID, driverName, driverPlate = nullString(&a.DriverID), nullString(&a.DriverName), nullString(&a.VehiclePlate)
		assignedAt = nullMicros(&a.AssignedAt)
		eta = sql.NullInt64{Int64: int64(a.ETASeconds), Valid: true}
	}
	return []any{
		r.ID, r.OwnerID, string(r.Status), string(r.ServiceType),
		r.Location.Lat, r.Location.Lng, r.Location.Address, r.Location.Province, r.Location.District,
		dLat, dLng, dAddr, dProv, dDist,
		r.Vehicle.Plate, r.Vehicle.Make, r.Vehicle.Model, string(r.Vehicle.Type), r.Policy.Insurer, r.Policy.PolicyNumber,
		r.Contact.Name, r.Contact.Phone, r.Notes,
		string(r.Insurance.Status), nullMicros(r.Insurance.CheckedAt), nullString(r.Insurance.Reason), coverage, nullString(r.Insurance.Reference), flagsArg(r.Insurance.Flags),
		driverID, driverName, driverPlate, assignedAt, eta,
		toMicros(r.CreatedAt), toMicros(r.UpdatedAt), r.Version,
	}
}

// flagsArg stores flags as a JSON array.
func flagsArg(flags []string) string {
	if len(flags) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(flags) // strings always encode
	return string(b)
}

func nullString(s *string) sql.NullString {
	if s == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: *s, Valid: true}
}

type rowScanner interface{ Scan(dest ...any) error }

func scanRequest(row rowScanner) (intake.Request, error) {
	var (
		r                                 intake.Request
		status, service, vtype, insStatus string
		dLat, dLng                        sql.NullFloat64
		dAddr, dProv, dDist               sql.NullString
		checkedAt, assignedAt, eta        sql.NullInt64
		reason, coverage, reference       sql.NullString
		driverID, driverName, driverPlate sql.NullString
		flags                             string
		createdAt, updatedAt              int64
	)
	err := row.Scan(&r.ID, &r.OwnerID, &status, &service,
		&r.Location.Lat, &r.Location.Lng, &r.Location.Address, &r.Location.Province, &r.Location.District,
		&dLat, &dLng, &dAddr, &dProv, &dDist,
		&r.Vehicle.Plate, &r.Vehicle.Make, &r.Vehicle.Model, &vtype, &r.Policy.Insurer, &r.Policy.PolicyNumber,
		&r.Contact.Name, &r.Contact.Phone, &r.Notes,
		&insStatus, &checkedAt, &reason, &coverage, &reference, &flags,
		&driverID, &driverName, &driverPlate, &assignedAt, &eta,
		&createdAt, &updatedAt, &r.Version)
	if err != nil {
		return intake.Request{}, err
	}
	r.Status = intake.Status(status)
	r.ServiceType = intake.ServiceType(service)
	r.Vehicle.Type = intake.VehicleType(vtype)
	if dLat.Valid {
		r.Destination = &intake.Location{Lat: dLat.Float64, Lng: dLng.Float64,
			Address: dAddr.String, Province: dProv.String, District: dDist.String}
	}
	r.Insurance.Status = intake.InsuranceStatus(insStatus)
	if checkedAt.Valid {
		t := fromMicros(checkedAt.Int64)
		r.Insurance.CheckedAt = &t
	}
	if reason.Valid {
		r.Insurance.Reason = &reason.String
	}
	if coverage.Valid {
		r.Insurance.Coverage = []byte(coverage.String)
	}
	if reference.Valid {
		r.Insurance.Reference = &reference.String
	}
	if err := json.Unmarshal([]byte(flags), &r.Insurance.Flags); err != nil {
		return intake.Request{}, fmt.Errorf("decode insurance flags: %w", err)
	}
	if driverID.Valid {
		r.Assignment = &intake.Assignment{DriverID: driverID.String, DriverName: driverName.String,
			VehiclePlate: driverPlate.String, AssignedAt: fromMicros(assignedAt.Int64), ETASeconds: int(eta.Int64)}
	}
	r.CreatedAt, r.UpdatedAt = fromMicros(createdAt), fromMicros(updatedAt)
	return r, nil
}
