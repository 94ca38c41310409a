package httpapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

// Account management and the audit trail, for admins. Handlers decode and
// encode; the rules (who may, what a change revokes, the trail written in
// the change's transaction) are the account service's.

var admins = []identity.Role{identity.Admin}

// userView is an account as admins see it: never its password hash.
type userView struct {
	ID           string        `json:"id"`
	Username     string        `json:"username"`
	Role         identity.Role `json:"role"`
	Name         string        `json:"name"`
	Phone        string        `json:"phone"`
	Disabled     bool          `json:"disabled"`
	TokenVersion int64         `json:"token_version"`
	CreatedAt    time.Time     `json:"created_at"`
	UpdatedAt    time.Time     `json:"updated_at"`
	Driver       *driverView   `json:"driver"`
}

type driverView struct {
	VehiclePlate string               `json:"vehicle_plate"`
	VehicleKind  string               `json:"vehicle_kind"`
	Capabilities []intake.ServiceType `json:"capabilities"`
	Provider     *string              `json:"provider"`
}

func viewOf(u account.User) userView {
	v := userView{
		ID: u.ID, Username: u.Username, Role: u.Role, Name: u.Name, Phone: u.Phone, Disabled: u.Disabled,
		TokenVersion: u.TokenVersion, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
	}
	if u.Driver != nil && u.Role == identity.Driver {
		d := u.Driver
		v.Driver = &driverView{VehiclePlate: d.VehiclePlate, VehicleKind: string(d.VehicleKind), Capabilities: d.Capabilities}
		if d.ProviderCode != "" {
			v.Driver.Provider = &d.ProviderCode
		}
	}
	return v
}

type userList struct {
	Items      []userView `json:"items"`
	NextCursor *string    `json:"next_cursor"`
}

type newUserBody struct {
	Username     string        `json:"username"`
	Password     string        `json:"password"`
	Role         identity.Role `json:"role"`
	Name         string        `json:"name,omitempty"`
	Phone        string        `json:"phone,omitempty"`
	VehiclePlate string        `json:"vehicle_plate,omitempty"`
	VehicleKind  string        `json:"vehicle_kind,omitempty"`
	Capabilities []string      `json:"capabilities,omitempty"`
	Provider     string        `json:"provider,omitempty"`
}

type roleBody struct {
	Role identity.Role `json:"role"`
}

type reasonBody struct {
	Reason string `json:"reason,omitempty"`
}

type passwordBody struct {
	Password string `json:"password"`
}

type auditList struct {
	Items      []audit.Event `json:"items"`
	NextCursor *string       `json:"next_cursor"`
}

func userParams() []param {
	roles := make([]string, len(identity.Roles))
	for i, r := range identity.Roles {
		roles[i] = string(r)
	}
	return []param{
		{name: "role", kind: "string", enum: roles},
		{name: "disabled", kind: "string", enum: []string{"true", "false"}},
		limitParam, cursorParam,
	}
}

func auditParams() []param {
	actions := make([]string, len(audit.Actions))
	for i, a := range audit.Actions {
		actions[i] = string(a)
	}
	return []param{
		{name: "actor", kind: "string", description: "who acted: a user id, or cli:<os user>"},
		{name: "action", kind: "string", enum: actions},
		{name: "target", kind: "string", description: "what it was done to: a user, request or dead-letter id"},
		{name: "from", kind: "string", description: "RFC 3339; at or after"},
		{name: "to", kind: "string", description: "RFC 3339; before"},
		limitParam, cursorParam,
	}
}

// Example bodies: documented, and sent by the tests that call every route.
var (
	exampleNewUser  = newUserBody{Username: "zeynep", Password: "a-long-password", Role: identity.Operator, Name: "Zeynep Kaya"}
	exampleRole     = roleBody{Role: identity.Operator}
	exampleReason   = reasonBody{Reason: "reported stolen phone"}
	examplePassword = passwordBody{Password: "a-new-long-password"}
)

// accountRoutes are the admin endpoints of this file.
func (s *Server) accountRoutes() []route {
	user := []int{401, 403, 404, 429}
	change := []int{400, 401, 403, 404, 409, 413, 415, 422, 429}
	return []route{
		{method: "GET", pattern: "/v1/admin/users", summary: "List accounts", tag: "admin", roles: admins,
			handler: s.handleListUsers, success: 200, result: userList{}, query: userParams(), errors: []int{401, 403, 422, 429}},
		{method: "POST", pattern: "/v1/admin/users", summary: "Create an account", tag: "admin", roles: admins,
			handler: s.handleCreateUser, body: newUserBody{}, example: exampleNewUser, maxBody: 2 * smallBody, success: 201, result: userView{},
			errors: []int{400, 401, 403, 409, 413, 415, 422, 429, 503}},
		{method: "GET", pattern: "/v1/admin/users/{id}", summary: "Read an account", tag: "admin", roles: admins, object: objectUser,
			handler: s.handleGetUser, success: 200, result: userView{}, errors: user},
		{method: "POST", pattern: "/v1/admin/users/{id}/role", summary: "Change an account's role (revokes its tokens)", tag: "admin", roles: admins,
			object: objectUser, handler: s.handleSetRole, body: roleBody{}, example: exampleRole, maxBody: smallBody, success: 200, result: userView{}, errors: change},
		{method: "POST", pattern: "/v1/admin/users/{id}/disable", summary: "Disable an account (revokes its tokens)", tag: "admin", roles: admins,
			object: objectUser, handler: s.handleSetDisabled(true), body: reasonBody{}, example: exampleReason, maxBody: smallBody, success: 200, result: userView{}, errors: change},
		{method: "POST", pattern: "/v1/admin/users/{id}/enable", summary: "Enable a disabled account", tag: "admin", roles: admins,
			object: objectUser, handler: s.handleSetDisabled(false), body: reasonBody{}, example: exampleReason, maxBody: smallBody, success: 200, result: userView{}, errors: change},
		{method: "POST", pattern: "/v1/admin/users/{id}/password", summary: "Set a new password (revokes the account's tokens)", tag: "admin", roles: admins,
			object: objectUser, handler: s.handleResetPassword, body: passwordBody{}, example: examplePassword, maxBody: smallBody, success: 200, result: userView{},
			errors: append(change, 503)},
		{method: "POST", pattern: "/v1/admin/users/{id}/revoke-tokens", summary: "Revoke every token issued to an account so far", tag: "admin", roles: admins,
			object: objectUser, handler: s.handleRevokeTokens, success: 200, result: userView{}, errors: user},
		{method: "GET", pattern: "/v1/admin/audit", summary: "The audit trail of security events", tag: "admin", roles: admins,
			handler: s.handleAudit, success: 200, result: auditList{}, query: auditParams(), errors: []int{401, 403, 422, 429}},
	}
}

// decodeIDCursor reads a cursor made by encodeCursor from an id of the
// given prefix.
func decodeIDCursor(c, prefix string, errs *validate.Errors) string {
	if c == "" {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	id, ok := strings.CutPrefix(string(raw), "v1:")
	if err != nil || !ok || !strings.HasPrefix(id, prefix+"_") || len(id) > 64 {
		errs.Add("cursor", "is not a cursor this API gave out")
		return ""
	}
	return id
}

func nextCursor(lastID string) *string {
	if lastID == "" {
		return nil
	}
	c := encodeCursor(lastID)
	return &c
}

func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) {
	if s.admin == nil {
		s.writeProblem(w, r, errNoSuchFeature)
		return
	}
	q := r.URL.Query() // checkQuery refused undeclared parameters
	var errs validate.Errors
	var f account.UserFilter
	if v := q.Get("role"); v != "" {
		validate.OneOf(&errs, "role", identity.Role(v), identity.Roles)
		f.Role = identity.Role(v)
	}
	if v := q.Get("disabled"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil || (v != "true" && v != "false") {
			errs.Add("disabled", "must be true or false")
		}
		f.Disabled = &b
	}
	f.Limit = queryLimit(&errs, q)
	f.Before = decodeIDCursor(q.Get("cursor"), "usr", &errs)
	if err := errs.Err(); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	page, err := s.admin.ListUsers(r.Context(), principalFrom(r.Context()), f)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	out := userList{Items: make([]userView, 0, len(page.Items)), NextCursor: nextCursor(page.NextCursor)}
	for _, u := range page.Items {
		out.Items = append(out.Items, viewOf(u))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request) {
	if s.admin == nil {
		s.writeProblem(w, r, errNoSuchFeature)
		return
	}
	var b newUserBody
	if err := decodeJSON(w, r, 2*smallBody, &b, false); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	u, err := s.admin.CreateUser(r.Context(), principalFrom(r.Context()), account.NewUser{
		Username: b.Username, Password: b.Password, Role: b.Role, Name: b.Name, Phone: b.Phone,
		VehiclePlate: b.VehiclePlate, VehicleKind: b.VehicleKind, Capabilities: b.Capabilities, Provider: b.Provider,
	})
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/admin/users/"+u.ID)
	writeJSON(w, http.StatusCreated, viewOf(u))
}

func (s *Server) handleGetUser(w http.ResponseWriter, r *http.Request) {
	s.userAction(w, r, nil, func(ctx context.Context, who identity.Principal, id string) (account.User, error) {
		if !strings.HasPrefix(id, "usr_") {
			return account.User{}, account.ErrNotFound // only ids here, not usernames
		}
		return s.admin.Lookup(ctx, who, id)
	})
}

func (s *Server) handleSetRole(w http.ResponseWriter, r *http.Request) {
	var b roleBody
	s.userAction(w, r, &b, func(ctx context.Context, who identity.Principal, id string) (account.User, error) {
		return s.admin.SetRole(ctx, who, id, b.Role)
	})
}

func (s *Server) handleSetDisabled(disabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b reasonBody
		s.userAction(w, r, &b, func(ctx context.Context, who identity.Principal, id string) (account.User, error) {
			return s.admin.SetDisabled(ctx, who, id, disabled, b.Reason)
		})
	}
}

func (s *Server) handleResetPassword(w http.ResponseWriter, r *http.Request) {
	var b passwordBody
	s.userAction(w, r, &b, func(ctx context.Context, who identity.Principal, id string) (account.User, error) {
		return s.admin.ResetPassword(ctx, who, id, b.Password)
	})
}

func (s *Server) handleRevokeTokens(w http.ResponseWriter, r *http.Request) {
	s.userAction(w, r, nil, func(ctx context.Context, who identity.Principal, id string) (account.User, error) {
		return s.admin.RevokeTokens(ctx, who, id)
	})
}

// userAction is what every per-account endpoint shares: decode the body
// (if any; an empty one is allowed where every member is optional), act,
// answer the account as it is now.
func (s *Server) userAction(w http.ResponseWriter, r *http.Request, body any, act func(context.Context, identity.Principal, string) (account.User, error)) {
	if s.admin == nil {
		s.writeProblem(w, r, errNoSuchFeature)
		return
	}
	if body != nil {
		_, optional := body.(*reasonBody)
		if err := decodeJSON(w, r, smallBody, body, optional); err != nil {
			s.writeProblem(w, r, err)
			return
		}
	}
	u, err := act(r.Context(), principalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(u))
}

func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	if s.audit == nil {
		s.writeProblem(w, r, errNoSuchFeature)
		return
	}
	q := r.URL.Query() // checkQuery refused undeclared parameters
	var errs validate.Errors
	f := audit.Filter{
		ActorID: errs.Line("actor", q.Get("actor"), false, 100),
		Target:  errs.Line("target", q.Get("target"), false, 100),
	}
	if v := q.Get("action"); v != "" {
		validate.OneOf(&errs, "action", audit.Action(v), audit.Actions)
		f.Action = audit.Action(v)
	}
	for _, tf := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(tf.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				errs.Add(tf.name, "must be an RFC 3339 time, e.g. 2026-11-26T10:00:00Z")
			}
			*tf.dst = t
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		errs.Add("to", "must be after from")
	}
	f.Limit = queryLimit(&errs, q)
	f.Before = decodeIDCursor(q.Get("cursor"), "aud", &errs)
	if err := errs.Err(); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	page, err := s.audit.List(r.Context(), f)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	out := auditList{Items: page.Items, NextCursor: nextCursor(page.NextCursor)}
	if out.Items == nil {
		out.Items = []audit.Event{}
	}
	writeJSON(w, http.StatusOK, out)
}

// record writes an event of an operator's override, best-effort.
func (s *Server) record(ctx context.Context, action audit.Action, target string, details map[string]string) {
	if s.audit == nil {
		return
	}
	s.audit.Record(ctx, audit.New(ctx, time.Now(), action, principalFrom(ctx), target, details))
}
