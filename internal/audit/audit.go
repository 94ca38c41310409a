// Package audit is the trail of security events: logins (succeeded,
// failed, from which address), tokens refused, accounts created and
// changed, operator overrides (insurance decisions, dead-letter re-drives,
// manual assignments) and exports. It is the start of the dispute-grade
// record of who did what to a job.
//
// The trail is append-only: a Store appends, reads and prunes what is
// older than the retention, and nothing else; the SQL stores also refuse
// an UPDATE of a row. It holds no secret: never a password, a hash or a
// token, only ids, roles, addresses and short details.
//
// A change that has a transaction (a role change) writes its event in that
// transaction, through the store that makes the change; an event without
// one (a login) goes through a Recorder, best-effort: a failure to record
// is logged and counted, and never fails what it records.
package audit

import (
	"context"
	"errors"
	"time"

	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
)

// Action is what happened. The set is closed: metrics are labelled by it.
type Action string

const (
	LoginSucceeded     Action = "login.succeeded"
	LoginFailed        Action = "login.failed"
	TokenRefused       Action = "token.refused"
	UserCreated        Action = "user.created"
	UserRoleChanged    Action = "user.role_changed"
	UserDisabled       Action = "user.disabled"
	UserEnabled        Action = "user.enabled"
	UserPasswordReset  Action = "user.password_reset"
	UserTokensRevoked  Action = "user.tokens_revoked"
	InsuranceDecided   Action = "insurance.decided"
	DeadLetterRedriven Action = "dead_letter.redriven"
	RequestAssigned    Action = "request.assigned"
	Exported           Action = "export"
)

// Actions lists every action.
var Actions = []Action{
	LoginSucceeded, LoginFailed, TokenRefused, UserCreated, UserRoleChanged, UserDisabled, UserEnabled,
	UserPasswordReset, UserTokensRevoked, InsuranceDecided, DeadLetterRedriven, RequestAssigned, Exported,
}

// Valid reports whether a is one of Actions.
func (a Action) Valid() bool {
	for _, x := range Actions {
		if x == a {
			return true
		}
	}
	return false
}

// Event is one entry of the trail.
type Event struct {
	ID     string    `json:"id"`
	At     time.Time `json:"at"`
	Action Action    `json:"action"`
	// ActorID is who did it: a user id, "cli:<os user>" for the command
	// line, or empty for an anonymous caller (a failed login).
	ActorID   string        `json:"actor_id"`
	ActorRole identity.Role `json:"actor_role,omitempty"`
	// Target is the id of what it was done to: a user, a request, a dead
	// letter.
	Target string `json:"target,omitempty"`
	// Address is the client's address; RequestID the HTTP request's id,
	// which the access log carries too.
	Address   string `json:"address,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// Details are short facts ("from": "customer", "to": "operator"),
	// never secrets.
	Details map[string]string `json:"details,omitempty"`
}

// Origin is where a call came from; the HTTP edge puts it in the context
// of every request so that events made deep inside carry it.
type Origin struct {
	Address   string
	RequestID string
}

type originKey struct{}

// WithOrigin returns ctx carrying o.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// OriginFrom returns the origin in ctx (zero if none).
func OriginFrom(ctx context.Context) Origin {
	o, _ := ctx.Value(originKey{}).(Origin)
	return o
}

// New returns an event of action by actor about target at now, with the
// origin in ctx. details may be nil.
func New(ctx context.Context, now time.Time, action Action, actor identity.Principal, target string, details map[string]string) Event {
	now = now.UTC().Truncate(time.Microsecond)
	o := OriginFrom(ctx)
	return Event{
		ID: id.New("aud", now), At: now, Action: action, ActorID: actor.UserID, ActorRole: actor.Role,
		Target: target, Address: o.Address, RequestID: o.RequestID, Details: details,
	}
}

// Recorder keeps events that have no transaction of their own. Record
// never fails its caller: it logs and counts what it could not keep.
// Domain services that make operator overrides (dispatch's manual assign)
// take one.
type Recorder interface {
	Record(ctx context.Context, e Event)
}

// Discard is a Recorder that keeps nothing.
type Discard struct{}

// Record implements Recorder.
func (Discard) Record(context.Context, Event) {}

// Store keeps the trail. Implementations live in internal/store/...; all
// of them pass internal/store/storetest.
type Store interface {
	// AppendAudit appends events in one transaction.
	AppendAudit(ctx context.Context, events ...Event) error
	// AuditEvents returns up to f.Limit events matching f, newest first.
	AuditEvents(ctx context.Context, f Filter) ([]Event, error)
	// PruneAudit deletes up to limit events older than before, oldest
	// first, and says how many it deleted.
	PruneAudit(ctx context.Context, before time.Time, limit int) (int, error)
}

// Filter selects events. Zero fields match everything.
type Filter struct {
	ActorID  string
	Action   Action
	Target   string
	From, To time.Time // At in [From, To)
	// Before is an event id: only older events are returned (the cursor).
	Before string
	Limit  int
}

// ErrInvalid marks a filter the store cannot answer.
var ErrInvalid = errors.New("invalid audit filter")
