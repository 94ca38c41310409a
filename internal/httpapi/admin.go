package httpapi

import (
	"net/http"
	"strings"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/validate"
)

type deadLetterList struct {
	Items      []deadletter.Letter `json:"items"`
	NextCursor *string             `json:"next_cursor"`
}

type notificationList struct {
	Items      []notify.Notification `json:"items"`
	NextCursor *string               `json:"next_cursor"`
}

var errNoSuchFeature = newProblem(http.StatusNotFound, "not-found", "Not found", "No such resource.")

func (s *Server) handleDeadLetters(w http.ResponseWriter, r *http.Request) {
	if s.dead == nil {
		s.writeProblem(w, r, errNoSuchFeature)
		return
	}
	q := r.URL.Query()
	var errs validate.Errors
	limit := queryLimit(&errs, q)
	if limit == 0 {
		limit = intake.DefaultLimit
	}
	before := q.Get("cursor")
	if before != "" && (!strings.HasPrefix(before, "dlq_") || len(before) > 64) {
		errs.Add("cursor", "is not a cursor this API gave out")
	}
	if err := errs.Err(); err != nil {
		s.writeProblem(w, r, err)
		return
	}
	items, err := s.dead.List(r.Context(), before, limit+1)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	out := deadLetterList{Items: items}
	if len(items) > limit {
		out.Items = items[:limit]
		next := items[limit-1].ID
		out.NextCursor = &next
	}
	if out.Items == nil {
		out.Items = []deadletter.Letter{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleRetryDeadLetter(w http.ResponseWriter, r *http.Request) {
	if s.dead == nil {
		s.writeProblem(w, r, errNoSuchFeature)
		return
	}
	l, err := s.dead.Retry(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	s.record(r.Context(), audit.DeadLetterRedriven, l.ID, map[string]string{"consumer": l.Consumer, "subject": l.Subject})
	writeJSON(w, http.StatusAccepted, l)
}

// handleNotifications shows a request's notifications to whoever may see
// the request; the request check comes first, so a stranger gets 404.
func (s *Server) handleNotifications(w http.ResponseWriter, r *http.Request) {
	req, err := s.intake.Get(r.Context(), principalFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if s.notes == nil {
		s.writeProblem(w, r, errNoSuchFeature)
		return
	}
	items, err := s.notes.Notifications(r.Context(), req.ID)
	if err != nil {
		s.writeProblem(w, r, err)
		return
	}
	if items == nil {
		items = []notify.Notification{}
	}
	writeJSON(w, http.StatusOK, notificationList{Items: items})
}
