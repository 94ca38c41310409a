package intake

import (
	"math"
	"regexp"
	"strings"

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
	maxPlate        = 16
	maxMakeModel    = 64
	maxInsurer      = 64
	maxPolicyNumber = 64
	maxName         = 120
	maxNotes        = 1000
	maxReason       = 500
)

var (
	plateRe   = regexp.MustCompile(`^[\p{Lu}\p{Nd} -]{2,16}$`)
	insurerRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	policyRe  = regexp.MustCompile(`^[\p{L}\p{Nd}./_-]{1,64}$`)
	phoneRe   = regexp.MustCompile(`^\+?[0-9]{7,15}$`)
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
		r.Vehicle.Plate = strings.ToUpper(errs.Text("vehicle.plate", v.Plate, true, maxPlate))
		if r.Vehicle.Plate != "" && !plateRe.MatchString(r.Vehicle.Plate) {
			errs.Add("vehicle.plate", "must be 2-16 letters, digits, spaces or dashes")
		}
		r.Vehicle.Make = errs.Text("vehicle.make", v.Make, false, maxMakeModel)
		r.Vehicle.Model = errs.Text("vehicle.model", v.Model, false, maxMakeModel)
		validate.OneOf(&errs, "vehicle.type", v.Type, VehicleTypes)
		r.Vehicle.Type = v.Type
	}

	if s.Policy == nil {
		errs.Add("policy", "is required")
	} else {
		p := *s.Policy
		r.Policy.Insurer = errs.Text("policy.insurer", p.Insurer, true, maxInsurer)
		if r.Policy.Insurer != "" && !insurerRe.MatchString(r.Policy.Insurer) {
			errs.Add("policy.insurer", "must be an insurer code: lower-case letters, digits, '-' or '_'")
		}
		r.Policy.PolicyNumber = errs.Text("policy.policy_number", p.PolicyNumber, true, maxPolicyNumber)
		if r.Policy.PolicyNumber != "" && !policyRe.MatchString(r.Policy.PolicyNumber) {
			errs.Add("policy.policy_number", "must be letters, digits, '.', '/', '_' or '-'")
		}
	}

	if s.Contact == nil {
		errs.Add("contact", "is required")
	} else {
		c := *s.Contact
		r.Contact.Name = errs.Text("contact.name", c.Name, true, maxName)
		phone := strings.NewReplacer(" ", "", "-", "", "(", "", ")", "").Replace(strings.TrimSpace(c.Phone))
		switch {
		case phone == "":
			errs.Add("contact.phone", "is required")
		case !phoneRe.MatchString(phone):
			errs.Add("contact.phone", "must be a phone number in international form, e.g. +905551112233")
		}
		r.Contact.Phone = phone
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
	out.Province = errs.Text(field+".province", l.Province, false, maxPlace)
	out.District = errs.Text(field+".district", l.District, false, maxPlace)
	return out
}
