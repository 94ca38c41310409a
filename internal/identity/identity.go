// Package identity holds who is calling: the authenticated principal and
// its role. It is deliberately tiny so that every domain package can depend
// on it without depending on how tokens are made or checked.
package identity

// Role is what an account may do. The set is closed.
type Role string

const (
	Customer Role = "customer"
	Driver   Role = "driver"
	Operator Role = "operator"
	Admin    Role = "admin"
)

// Roles lists every role, in the order help texts show them.
var Roles = []Role{Customer, Driver, Operator, Admin}

// Enum lists the roles (for the OpenAPI document).
func (Role) Enum() []string {
	out := make([]string, len(Roles))
	for i, r := range Roles {
		out[i] = string(r)
	}
	return out
}

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case Customer, Driver, Operator, Admin:
		return true
	}
	return false
}

// Staff reports whether the role sees every request (operations room).
func (r Role) Staff() bool { return r == Operator || r == Admin }

// Principal is the authenticated caller of one operation.
type Principal struct {
	UserID   string
	Username string
	Role     Role
	// TokenVersion is the account's token version the caller's token was
	// issued for (0 until the account's tokens are first revoked).
	TokenVersion int64
}
