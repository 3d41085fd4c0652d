package httpapi

// Just-in-time approval endpoints (see internal/approval):
//
//	GET  /v1/approvals[?status=pending|granted|denied|expired|all][&limit=N]   approver, admin, auditor
//	GET  /v1/approvals/{id}                                                    approver, admin, auditor
//	POST /v1/approvals/{id}/approve  {"reason": "..."} (reason optional)       approver, admin
//	POST /v1/approvals/{id}/deny     {"reason": "..."} (reason required)       approver, admin
//
// Decisions are audited by the approval service (approval.granted,
// approval.denied, approval.refused for a refused self-approval).

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/identity"
)

// ApprovalList is the answer of GET /v1/approvals.
type ApprovalList struct {
	Approvals []approval.View `json:"approvals"`
}

// DecisionRequest is the body of POST /v1/approvals/{id}/approve and /deny.
type DecisionRequest struct {
	Reason string `json:"reason"`
}

func (s *server) approvalRoutes(mux *http.ServeMux) {
	readers := s.requireRole(identity.RoleApprover, identity.RoleAdmin, identity.RoleAuditor)
	deciders := s.requireRole(identity.RoleApprover, identity.RoleAdmin)
	route(mux, http.MethodGet, "/v1/approvals", readers(http.HandlerFunc(s.listApprovals)))
	route(mux, http.MethodGet, "/v1/approvals/{id}", readers(http.HandlerFunc(s.showApproval)))
	route(mux, http.MethodPost, "/v1/approvals/{id}/approve", deciders(http.HandlerFunc(s.decideApproval(true))))
	route(mux, http.MethodPost, "/v1/approvals/{id}/deny", deciders(http.HandlerFunc(s.decideApproval(false))))
}

func (s *server) listApprovals(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	switch status {
	case "":
		status = approval.StatusPending
	case "all":
		status = ""
	case approval.StatusPending, approval.StatusGranted, approval.StatusDenied, approval.StatusExpired:
	default:
		writeError(w, http.StatusBadRequest, "status must be pending, granted, denied, expired or all")
		return
	}
	limit := 100
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit must be a number from 1 to 1000")
			return
		}
		limit = n
	}
	list, err := s.appr.List(r.Context(), status, limit)
	if err != nil {
		s.approvalError(w, err)
		return
	}
	if list == nil {
		list = []approval.View{}
	}
	writeJSON(w, http.StatusOK, ApprovalList{Approvals: list})
}

func approvalID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusBadRequest, "the approval id must be a positive number, as in `weir approvals list`")
		return 0, false
	}
	return id, true
}

func (s *server) showApproval(w http.ResponseWriter, r *http.Request) {
	id, ok := approvalID(w, r)
	if !ok {
		return
	}
	v, err := s.appr.Get(r.Context(), id)
	if err != nil {
		s.approvalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *server) decideApproval(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := approvalID(w, r)
		if !ok {
			return
		}
		var body DecisionRequest
		err := checkJSON(r)
		if err == nil {
			err = decodeExchangeBody(http.MaxBytesReader(w, r.Body, maxBody), &body)
		}
		if err != nil {
			var br *errBadRequest
			errors.As(err, &br)
			writeError(w, br.status, br.msg)
			return
		}
		c, _ := AdminFrom(r.Context())
		ap := approval.ApproverFromClaims(c)
		if approve {
			_, err = s.appr.Approve(r.Context(), id, ap, body.Reason)
		} else {
			_, err = s.appr.Deny(r.Context(), id, ap, body.Reason)
		}
		if err != nil {
			s.approvalError(w, err)
			return
		}
		v, err := s.appr.Get(r.Context(), id)
		if err != nil {
			s.approvalError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// approvalError maps the service's errors (whose texts are public) to statuses.
func (s *server) approvalError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, approval.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, approval.ErrSelfApproval), errors.Is(err, approval.ErrRole):
		status = http.StatusForbidden
	case errors.Is(err, approval.ErrAlreadyDecided), errors.Is(err, approval.ErrExpired):
		status = http.StatusConflict
	case errors.Is(err, approval.ErrReasonRequired):
		status = http.StatusBadRequest
	case errors.Is(err, approval.ErrUnaudited):
		status = http.StatusServiceUnavailable
	default:
		s.log.Error("approval request failed", "err", err)
		writeError(w, status, "weir could not complete this right now")
		return
	}
	writeError(w, status, err.Error())
}
