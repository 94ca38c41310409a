package intake

import (
	"math"
	"regexp"

	"github.com/yolda/yolda/internal/validate"
)

// Submission is the body of POST /v1/requests as the client sent it.
// Pointers tell a missing value from a zero one.
type Submission struct {
	ServiceType ServiceType    `json:"service_type"`
	Location    *LocationInput `json:"location"`
	Destination *LocationInput `json:"destination,omitempty"`
	Vehicle     *Vehicle       `json:"vehicle"`
	Policy      *Policy        `json:"policy"`
	Contact     *Contact       `json:"contact"`
	Notes       string         `json:"notes,omitempty"`
}

// LocationInput is a location as submitted.
type LocationInput struct {
	Lat      *float64 `json:"lat"`
	Lng      *float64 `json:"lng"`
	Address  string   `json:"address,omitempty"`
	Province string   `json:"province,omitempty"`
	District string   `json:"district,omitempty"`
}

// Field length limits. Generous for real data, small enough that a row
// stays small.
const (
	maxAddress      = 300
	maxPlace        = 80
	maxMakeModel    = 64
	maxInsurer      = 64
	maxPolicyNumber = 64
	maxName         = 120
	maxNotes        = 1000
	maxReason       = 500
)

var (
	insurerRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	policyRe  = regexp.MustCompile(`^[\p{L}\p{Nd}./_-]{1,64}$`)
)

// normalize validates s and returns the cleaned values a request is built
// from. Every problem is reported, not only the first.
func (s Submission) normalize() (Request, error) {
	var errs validate.Errors
	var r Request

	validate.OneOf(&errs, "service_type", s.ServiceType, ServiceTypes)
	r.ServiceType = s.ServiceType

	if s.Location == nil {
		errs.Add("location", "is required")
	} else {
		r.Location = s.Location.normalize(&errs, "location")
	}
	switch {
	case s.Destination != nil:
		d := s.Destination.normalize(&errs, "destination")
		r.Destination = &d
	case s.ServiceType == Tow:
		errs.Add("destination", "is required for a tow")
	}

	if s.Vehicle == nil {
		errs.Add("vehicle", "is required")
	} else {
		v := *s.Vehicle
		r.Vehicle.Plate, _ = errs.Plate("vehicle.plate", v.Plate, true)
		if v.ForeignPlate {
			errs.Add("vehicle.foreign_plate", "is worked out by Yolda from the plate; do not send it")
		}
		r.Vehicle.Make = errs.Line("vehicle.make", v.Make, false, maxMakeModel)
		r.Vehicle.Model = errs.Line("vehicle.model", v.Model, false, maxMakeModel)
		validate.OneOf(&errs, "vehicle.type", v.Type, VehicleTypes)
		r.Vehicle.Type = v.Type
	}

	if s.Policy == nil {
		errs.Add("policy", "is required")
	} else {
		p := *s.Policy
		before := len(errs)
		r.Policy.Insurer = errs.Line("policy.insurer", p.Insurer, true, maxInsurer)
		if len(errs) == before && r.Policy.Insurer != "" && !insurerRe.MatchString(r.Policy.Insurer) {
			errs.Add("policy.insurer", "must be an insurer code: lower-case letters, digits, '-' or '_'")
		}
		before = len(errs)
		r.Policy.PolicyNumber = errs.Line("policy.policy_number", p.PolicyNumber, true, maxPolicyNumber)
		if len(errs) == before && r.Policy.PolicyNumber != "" && !policyRe.MatchString(r.Policy.PolicyNumber) {
			errs.Add("policy.policy_number", "must be letters, digits, '.', '/', '_' or '-'")
		}
	}

	if s.Contact == nil {
		errs.Add("contact", "is required")
	} else {
		c := *s.Contact
		r.Contact.Name = errs.Line("contact.name", c.Name, true, maxName)
		r.Contact.Phone = errs.Phone("contact.phone", c.Phone, true)
	}
	r.Notes = errs.Text("notes", s.Notes, false, maxNotes)
	return r, errs.Err()
}

func (l LocationInput) normalize(errs *validate.Errors, field string) Location {
	var out Location
	switch {
	case l.Lat == nil:
		errs.Add(field+".lat", "is required")
	case math.IsNaN(*l.Lat) || *l.Lat < -90 || *l.Lat > 90:
		errs.Add(field+".lat", "must be between -90 and 90")
	default:
		out.Lat = *l.Lat
	}
	switch {
	case l.Lng == nil:
		errs.Add(field+".lng", "is required")
	case math.IsNaN(*l.Lng) || *l.Lng < -180 || *l.Lng > 180:
		errs.Add(field+".lng", "must be between -180 and 180")
	default:
		out.Lng = *l.Lng
	}
	out.Address = errs.Text(field+".address", l.Address, false, maxAddress)
	out.Province = errs.Line(field+".province", l.Province, false, maxPlace)
	out.District = errs.Line(field+".district", l.District, false, maxPlace)
	return out
}
