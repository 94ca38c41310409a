package fleet_test

import (
	"testing"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

func TestCanServe(t *testing.T) {
	all := intake.ServiceTypes
	cases := []struct {
		kind fleet.VehicleKind
		caps []intake.ServiceType
		st   intake.ServiceType
		want bool
	}{
		{fleet.TowTruck, all, intake.Tow, true},
		{fleet.TowTruck, all, intake.Lockout, true},
		{fleet.ServiceVan, all, intake.Tow, false}, // a van never tows, whatever it claims
		{fleet.ServiceVan, all, intake.JumpStart, true},
		{fleet.TowTruck, []intake.ServiceType{intake.Tow}, intake.JumpStart, false}, // not offered
		{"bicycle", all, intake.JumpStart, false},
		{fleet.TowTruck, all, "teleport", false},
	}
	for _, c := range cases {
		if got := fleet.CanServe(c.kind, c.caps, c.st); got != c.want {
			t.Errorf("CanServe(%s, %v, %s) = %v, want %v", c.kind, c.caps, c.st, got, c.want)
		}
		skills := fleet.SkillsOf(c.kind, c.caps)
		if got := fleet.SkillOf(c.st) != 0 && skills.Has(fleet.SkillOf(c.st)); got != c.want {
			t.Errorf("SkillsOf(%s, %v) has %s = %v, want %v", c.kind, c.caps, c.st, got, c.want)
		}
	}
	if fleet.DefaultKind([]intake.ServiceType{intake.Lockout, intake.Tow}) != fleet.TowTruck || fleet.DefaultKind([]intake.ServiceType{intake.Lockout}) != fleet.ServiceVan {
		t.Error("DefaultKind: a driver who tows drives a tow truck, others a van")
	}
	var errs validate.Errors
	fleet.ValidateProfile(&errs, fleet.ServiceVan, []intake.ServiceType{intake.Tow, intake.Lockout})
	if len(errs) != 1 || errs[0].Field != "capabilities" {
		t.Errorf("van with tow: %v", errs)
	}
	// Every service has its own bit.
	seen := fleet.Skills(0)
	for _, st := range all {
		b := fleet.SkillOf(st)
		if b == 0 || seen&b != 0 {
			t.Errorf("service %s has bit %b (seen %b)", st, b, seen)
		}
		seen |= b
	}
}
