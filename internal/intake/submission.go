package intake

import (
	"regexp"

	"github.com/yolda/yolda/internal/validate"
)

// Submission is the body of POST /v1/requests as the client sent it.
// Pointers tell a missing value from a zero one. The `validate` tags are
// the field rules: normalize applies them through validate.Struct and the
// OpenAPI document is generated from them (lengths are generous for real
// data, small enough that a row stays small).
type Submission struct {
	ServiceType ServiceType    `json:"service_type" validate:"required"`
	Location    *LocationInput `json:"location" validate:"required"`
	Destination *LocationInput `json:"destination,omitempty" validate:"required_if=service_type:tow"`
	Vehicle     *Vehicle       `json:"vehicle" validate:"required"`
	Policy      *Policy        `json:"policy" validate:"required"`
	Contact     *Contact       `json:"contact" validate:"required"`
	Notes       string         `json:"notes,omitempty" validate:"max=1000"`
}

// LocationInput is a location as submitted.
type LocationInput struct {
	Lat      *float64 `json:"lat" validate:"required,min=-90,max=90"`
	Lng      *float64 `json:"lng" validate:"required,min=-180,max=180"`
	Address  string   `json:"address,omitempty" validate:"max=300"`
	Province string   `json:"province,omitempty" validate:"max=80,line"`
	District string   `json:"district,omitempty" validate:"max=80,line"`
}

// maxReason bounds the reason given for a cancellation or a decision.
const maxReason = 500

var (
	insurerRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	policyRe  = regexp.MustCompile(`^[\p{L}\p{Nd}./_-]{1,64}$`)
)

// normalize validates s and returns the cleaned values a request is built
// from. Every problem is reported, not only the first.
func (s Submission) normalize() (Request, error) {
	var errs validate.Errors
	validate.Struct(&errs, "", &s)
	r := Request{ServiceType: s.ServiceType, Notes: validate.Clean(s.Notes)}
	if s.Location != nil {
		r.Location = s.Location.normalize()
	}
	if s.Destination != nil {
		d := s.Destination.normalize()
		r.Destination = &d
	}
	// What the tags cannot say: the forms of plates, codes and phones,
	// checked where the text itself passed.
	if v := s.Vehicle; v != nil {
		r.Vehicle = Vehicle{Plate: validate.Clean(v.Plate), Make: validate.Clean(v.Make), Model: validate.Clean(v.Model), Type: v.Type}
		if !errs.Has("vehicle.plate") {
			r.Vehicle.Plate, _ = errs.Plate("vehicle.plate", v.Plate, true)
		}
	}
	if p := s.Policy; p != nil {
		r.Policy = Policy{Insurer: validate.Clean(p.Insurer), PolicyNumber: validate.Clean(p.PolicyNumber)}
		if r.Policy.Insurer != "" && !errs.Has("policy.insurer") && !insurerRe.MatchString(r.Policy.Insurer) {
			errs.Add("policy.insurer", "must be an insurer code: lower-case letters, digits, '-' or '_'")
		}
		if r.Policy.PolicyNumber != "" && !errs.Has("policy.policy_number") && !policyRe.MatchString(r.Policy.PolicyNumber) {
			errs.Add("policy.policy_number", "must be letters, digits, '.', '/', '_' or '-'")
		}
	}
	if c := s.Contact; c != nil {
		r.Contact = Contact{Name: validate.Clean(c.Name), Phone: validate.Clean(c.Phone)}
		if !errs.Has("contact.phone") {
			r.Contact.Phone = errs.Phone("contact.phone", c.Phone, true)
		}
	}
	return r, errs.Err()
}

// normalize copies a submitted location; validate.Struct checked it.
func (l LocationInput) normalize() Location {
	out := Location{Address: validate.Clean(l.Address), Province: validate.Clean(l.Province), District: validate.Clean(l.District)}
	if l.Lat != nil {
		out.Lat = *l.Lat
	}
	if l.Lng != nil {
		out.Lng = *l.Lng
	}
	return out
}
