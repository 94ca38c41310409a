package ratelimit

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/yolda/yolda/internal/identity"
)

// Policy is the budgets of one route class: one per identity, by the
// identity's role, and one per client address, whoever is calling. Each
// client has its own budget of each kind; an Off limit is no budget.
type Policy struct {
	Identity map[identity.Role]Limit
	Address  Limit
	// FailClosed refuses the class's requests (503) when the shared
	// limiter cannot decide; otherwise they pass unlimited.
	FailClosed bool
}

// Policies are the policies of every route class, by class name.
type Policies map[string]Policy

// Clone is a deep copy, for Apply to change.
func (ps Policies) Clone() Policies {
	out := make(Policies, len(ps))
	for name, p := range ps {
		p.Identity = maps.Clone(p.Identity)
		if p.Identity == nil {
			p.Identity = map[identity.Role]Limit{}
		}
		out[name] = p
	}
	return out
}

// Apply changes ps as spec says: "off" turns every limit off; otherwise a
// comma-separated list of
//
//	CLASS.WHO=LIMIT     WHO: customer, driver, operator, admin, staff
//	                    (operator and admin), everyone (every role) or
//	                    address; LIMIT: RATE/s:BURST, RATE/m:BURST or off
//	CLASS.fail=open|closed
//
// CLASS is a class of ps, or * for every class. An empty spec changes
// nothing.
func (ps Policies) Apply(spec string) error {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil
	}
	if spec == "off" {
		for name, p := range ps {
			for r := range p.Identity {
				p.Identity[r] = Limit{}
			}
			p.Address = Limit{}
			ps[name] = p
		}
		return nil
	}
	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		lhs, value, ok := strings.Cut(item, "=")
		class, who, ok2 := strings.Cut(lhs, ".")
		if !ok || !ok2 {
			return fmt.Errorf("rate limit %q: want CLASS.WHO=LIMIT or CLASS.fail=open|closed", item)
		}
		classes := []string{class}
		if class == "*" {
			classes = slices.Sorted(maps.Keys(ps))
		} else if _, known := ps[class]; !known {
			return fmt.Errorf("rate limit %q: no class %q (classes: %s)", item, class, strings.Join(slices.Sorted(maps.Keys(ps)), ", "))
		}
		if who == "fail" {
			if value != "open" && value != "closed" {
				return fmt.Errorf("rate limit %q: fail is open or closed", item)
			}
			for _, c := range classes {
				p := ps[c]
				p.FailClosed = value == "closed"
				ps[c] = p
			}
			continue
		}
		l, err := ParseLimit(value)
		if err != nil {
			return fmt.Errorf("rate limit %q: %w", item, err)
		}
		var roles []identity.Role
		switch who {
		case "address":
		case "everyone":
			roles = identity.Roles
		case "staff":
			roles = []identity.Role{identity.Operator, identity.Admin}
		default:
			if !identity.Role(who).Valid() {
				return fmt.Errorf("rate limit %q: %q is not a role, staff, everyone or address", item, who)
			}
			roles = []identity.Role{identity.Role(who)}
		}
		for _, c := range classes {
			p := ps[c]
			if who == "address" {
				p.Address = l
			}
			if p.Identity == nil {
				p.Identity = map[identity.Role]Limit{}
			}
			for _, r := range roles {
				p.Identity[r] = l
			}
			ps[c] = p
		}
	}
	return nil
}

// CheckSpec reports whether spec is well formed, without knowing the
// classes (configuration checks it before the edge exists).
func CheckSpec(spec string) error {
	probe := Policies{}
	for item := range strings.SplitSeq(spec, ",") {
		if class, _, ok := strings.Cut(strings.TrimSpace(item), "."); ok && class != "*" {
			probe[class] = Policy{}
		}
	}
	return probe.Apply(spec)
}
