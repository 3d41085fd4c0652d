package approval

import (
	"fmt"
	"time"

	"github.com/weir-gw/weir/internal/store"
)

// View is a request as the API, the CLI and notifications show it.
type View struct {
	ID             int64             `json:"id"`
	Status         string            `json:"status"`
	Mode           string            `json:"mode"`
	Agent          string            `json:"agent"`
	Target         string            `json:"target"`
	SessionID      string            `json:"session_id,omitempty"`
	TokenID        string            `json:"token_id,omitempty"`
	Context        map[string]string `json:"context"`
	Statements     []string          `json:"statements"`
	Fingerprint    string            `json:"fingerprint,omitempty"`
	Rule           string            `json:"rule"`
	Preview        string            `json:"preview,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
	ExpiresAt      time.Time         `json:"expires_at"`
	DecidedAt      time.Time         `json:"decided_at,omitzero"`
	DecidedBy      string            `json:"decided_by,omitempty"`
	Reason         string            `json:"reason,omitempty"`
	GrantExpiresAt time.Time         `json:"grant_expires_at,omitzero"`
	UsedAt         time.Time         `json:"used_at,omitzero"`
	// ApproveCommand and DenyCommand are the CLI commands that decide it.
	ApproveCommand string `json:"approve_command"`
	DenyCommand    string `json:"deny_command"`
}

// ViewOf converts a stored request (times in UTC).
func ViewOf(r store.ApprovalRequest) View {
	utc := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return t.UTC()
	}
	ctx := r.Context
	if ctx == nil {
		ctx = map[string]string{}
	}
	return View{
		ID: r.ID, Status: r.Status, Mode: r.Mode, Agent: r.Agent, Target: r.Target, SessionID: r.SessionID, TokenID: r.TokenID,
		Context: ctx, Statements: r.Statements, Fingerprint: r.Fingerprint, Rule: r.Rule, Preview: r.Preview,
		CreatedAt: utc(r.CreatedAt), ExpiresAt: utc(r.ExpiresAt), DecidedAt: utc(r.DecidedAt), DecidedBy: r.DecidedBy, Reason: r.Reason,
		GrantExpiresAt: utc(r.GrantExpiresAt), UsedAt: utc(r.UsedAt),
		ApproveCommand: fmt.Sprintf("weir approvals approve %d", r.ID),
		DenyCommand:    fmt.Sprintf("weir approvals deny %d --reason \"...\"", r.ID),
	}
}
