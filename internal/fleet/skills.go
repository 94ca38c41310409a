package fleet

import (
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

// VehicleKind is what a driver drives.
type VehicleKind string

const (
	// TowTruck can carry a vehicle away, and also do roadside work.
	TowTruck VehicleKind = "tow_truck"
	// ServiceVan does roadside work only: no tow.
	ServiceVan VehicleKind = "service_van"
)

// VehicleKinds lists every vehicle kind.
var VehicleKinds = []VehicleKind{TowTruck, ServiceVan}

// Allows reports whether the vehicle kind is fit for the service: a tow
// needs a tow truck, every other service a van or a truck.
func (k VehicleKind) Allows(st intake.ServiceType) bool {
	switch k {
	case TowTruck:
		return skillBit(st) != 0
	case ServiceVan:
		return st != intake.Tow && skillBit(st) != 0
	}
	return false
}

// CanServe is the one answer to "can this driver do service st": its
// vehicle must be fit for it and the driver must offer it.
func CanServe(kind VehicleKind, capabilities []intake.ServiceType, st intake.ServiceType) bool {
	if !kind.Allows(st) {
		return false
	}
	for _, c := range capabilities {
		if c == st {
			return true
		}
	}
	return false
}

// DefaultKind is the vehicle kind assumed when a profile does not name
// one: a driver who tows drives a tow truck.
func DefaultKind(capabilities []intake.ServiceType) VehicleKind {
	for _, c := range capabilities {
		if c == intake.Tow {
			return TowTruck
		}
	}
	return ServiceVan
}

// ValidateProfile checks a driver profile's vehicle kind against its
// capabilities, so that what is stored is what the driver can do.
func ValidateProfile(errs *validate.Errors, kind VehicleKind, capabilities []intake.ServiceType) {
	validate.OneOf(errs, "vehicle_kind", kind, VehicleKinds)
	for _, c := range capabilities {
		if skillBit(c) != 0 && (kind == TowTruck || kind == ServiceVan) && !kind.Allows(c) {
			errs.Add("capabilities", string(c)+" needs a tow truck")
		}
	}
}

// Skills is a set of services as bits, so that the position index can
// filter drivers without knowing what a service is. The bit of each
// service is fixed (it is stored by the Redis index): append, never
// renumber.
type Skills uint32

var skillBits = map[intake.ServiceType]Skills{
	intake.Tow:          1 << 0,
	intake.JumpStart:    1 << 1,
	intake.FlatTire:     1 << 2,
	intake.FuelDelivery: 1 << 3,
	intake.Lockout:      1 << 4,
	intake.Winch:        1 << 5,
}

func skillBit(st intake.ServiceType) Skills { return skillBits[st] }

// SkillOf is the bit of one service, or 0 for an unknown service.
func SkillOf(st intake.ServiceType) Skills { return skillBit(st) }

// SkillsOf is what a driver can do, as bits: CanServe for every service
// at once, which is what the index filters on.
func SkillsOf(kind VehicleKind, capabilities []intake.ServiceType) Skills {
	var s Skills
	for _, st := range intake.ServiceTypes {
		if CanServe(kind, capabilities, st) {
			s |= skillBit(st)
		}
	}
	return s
}

// Has reports whether every bit of need is in s.
func (s Skills) Has(need Skills) bool { return s&need == need }
