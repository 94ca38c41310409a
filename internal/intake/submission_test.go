package intake

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/yolda/yolda/internal/validate"
)

func goodSubmission() Submission {
	lat, lng := 41.0082, 28.9784
	dlat, dlng := 41.05, 29.01
	return Submission{
		ServiceType: Tow,
		Location:    &LocationInput{Lat: &lat, Lng: &lng, Address: "Fatih, İstanbul", Province: "İstanbul", District: "Fatih"},
		Destination: &LocationInput{Lat: &dlat, Lng: &dlng, Address: "Servis, Şişli"},
		Vehicle:     &Vehicle{Plate: "34ABC123", Make: "Fiat", Model: "Egea", Type: "car"},
		Policy:      &Policy{Insurer: "anadolu", PolicyNumber: "POL-123456"},
		Contact:     &Contact{Name: "Ayşe Yılmaz", Phone: "+905551112233"},
		Notes:       "Left lane, hazard lights on",
	}
}

// Text is stored in one spelling, and nothing that could reorder an
// operator's screen is stored at all.
func TestSubmissionText(t *testing.T) {
	bad := []struct {
		name  string
		edit  func(s *Submission)
		field string
	}{
		{"override in contact name", func(s *Submission) { s.Contact.Name = "Ayşe \u202eYılmaz" }, "contact.name"},
		{"isolate in notes", func(s *Submission) { s.Notes = "gate code \u20661234\u2069" }, "notes"},
		{"override in address", func(s *Submission) { s.Location.Address = "Fatih\u202d" }, "location.address"},
		{"newline in province", func(s *Submission) { s.Location.Province = "İstan\nbul" }, "location.province"},
		{"zero width space in district", func(s *Submission) { s.Location.District = "Fa\u200btih" }, "location.district"},
		{"invalid UTF-8 in notes", func(s *Submission) { s.Notes = "ok \xff" }, "notes"},
		{"invalid UTF-8 in name", func(s *Submission) { s.Contact.Name = "\xc3" }, "contact.name"},
		{"control in make", func(s *Submission) { s.Vehicle.Make = "Fiat\x07" }, "vehicle.make"},
		{"override in plate", func(s *Submission) { s.Vehicle.Plate = "34\u202eABC123" }, "vehicle.plate"},
		{"symbols in plate", func(s *Submission) { s.Vehicle.Plate = "34/ABC/123" }, "vehicle.plate"},
		{"override in phone", func(s *Submission) { s.Contact.Phone = "+90555\u202e1112233" }, "contact.phone"},
		{"override in policy number", func(s *Submission) { s.Policy.PolicyNumber = "POL\u202e1" }, "policy.policy_number"},
		{"client sets foreign_plate", func(s *Submission) { s.Vehicle.ForeignPlate = true }, "vehicle.foreign_plate"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			s := goodSubmission()
			tc.edit(&s)
			_, err := s.normalize()
			errs, ok := err.(validate.Errors)
			if !ok {
				t.Fatalf("err = %v, want field errors", err)
			}
			var fields []string
			for _, e := range errs {
				fields = append(fields, e.Field)
			}
			if len(errs) != 1 || errs[0].Field != tc.field {
				t.Errorf("errors on %v, want exactly %s", fields, tc.field)
			}
		})
	}

	good := []struct {
		name  string
		edit  func(s *Submission)
		check func(r Request) bool
	}{
		{"decomposed İstanbul is the precomposed one", func(s *Submission) { s.Location.Province = "I\u0307stanbul" },
			func(r Request) bool { return r.Location.Province == "İstanbul" }},
		{"plate with spaces", func(s *Submission) { s.Vehicle.Plate = "34 abc 123" }, func(r Request) bool { return r.Vehicle.Plate == "34ABC123" }},
		{"plate with dashes", func(s *Submission) { s.Vehicle.Plate = "34-ABC-123" }, func(r Request) bool { return r.Vehicle.Plate == "34ABC123" }},
		{"plate with Turkish lower case", func(s *Submission) { s.Vehicle.Plate = "06 ıi 123" }, func(r Request) bool { return r.Vehicle.Plate == "06II123" }},
		{"foreign plate kept", func(s *Submission) { s.Vehicle.Plate = "M-AB 1234" }, func(r Request) bool { return r.Vehicle.Plate == "MAB1234" }},
		{"notes keep their line breaks", func(s *Submission) { s.Notes = "line one\r\nline two" },
			func(r Request) bool { return r.Notes == "line one\nline two" }},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			s := goodSubmission()
			tc.edit(&s)
			r, err := s.normalize()
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.check(r) {
				t.Errorf("stored %+v %+v %q", r.Location, r.Vehicle, r.Notes)
			}
		})
	}
}

// The representation flags a plate that is not Turkish, whatever spelling
// the stored value has (older rows kept the spaces).
func TestVehicleShowsForeignPlate(t *testing.T) {
	for plate, foreign := range map[string]bool{"34ABC123": false, "34 ABC 123": false, "MAB1234": true, "34TOW01": true} {
		b, err := json.Marshal(Vehicle{Plate: plate, Type: "car"})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(b), `"foreign_plate":true`); got != foreign {
			t.Errorf("%s: %s, want foreign_plate shown %v", plate, b, foreign)
		}
	}
}
