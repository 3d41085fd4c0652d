package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/store"
)

type approvalsEnv struct {
	srv  *httptest.Server
	svc  *approval.Service
	rec  *recorder
	toks map[string]string
}

func newApprovalsAPI(t *testing.T) *approvalsEnv {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	auth, err := identity.NewAuthority(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	svc, err := approval.New(approval.Options{Store: st, Audit: rec.append})
	if err != nil {
		t.Fatal(err)
	}
	e := &approvalsEnv{svc: svc, rec: rec, toks: map[string]string{}}
	for name, role := range map[string]identity.Role{"alice": identity.RoleApprover, "bob": identity.RoleAdmin, "carol": identity.RoleAuditor, "ci-bot": identity.RoleApprover} {
		tok, _, err := auth.IssueAdmin(ctx, name, role, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		e.toks[name] = tok
	}
	e.srv = httptest.NewServer(New(Options{Authority: auth, Audit: rec.append, Approvals: svc}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *approvalsEnv) do(t *testing.T, who, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+e.toks[who])
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: not JSON: %q", method, path, b)
	}
	return resp.StatusCode, m
}

func (e *approvalsEnv) request(t *testing.T) int64 {
	t.Helper()
	p, err := e.svc.Request(context.Background(), approval.Req{Agent: "ci-bot", Target: "orders", Statements: []string{"DELETE FROM orders"}, Rule: "r", Mode: approval.ModeAsync})
	if err != nil {
		t.Fatal(err)
	}
	return p.ID
}

func TestApprovalRoutes(t *testing.T) {
	e := newApprovalsAPI(t)
	for i := 0; i < 3; i++ {
		e.request(t)
	}

	if code, m := e.do(t, "", "GET", "/v1/approvals", ""); code != 401 || m["error"] == nil {
		t.Fatalf("no token: %d %v", code, m)
	}
	code, m := e.do(t, "carol", "GET", "/v1/approvals", "")
	if code != 200 || len(m["approvals"].([]any)) != 3 {
		t.Fatalf("list as auditor: %d %v", code, m)
	}
	first := m["approvals"].([]any)[0].(map[string]any)
	if first["agent"] != "ci-bot" || first["status"] != "pending" || first["approve_command"] == "" {
		t.Fatalf("list entry = %v", first)
	}
	if code, m = e.do(t, "carol", "GET", "/v1/approvals/1", ""); code != 200 || m["id"].(float64) != 1 || m["statements"].([]any)[0] != "DELETE FROM orders" {
		t.Fatalf("show: %d %v", code, m)
	}
	if code, _ = e.do(t, "carol", "GET", "/v1/approvals/99", ""); code != 404 {
		t.Fatalf("show unknown: %d", code)
	}
	if code, _ = e.do(t, "carol", "GET", "/v1/approvals/x", ""); code != 400 {
		t.Fatalf("show bad id: %d", code)
	}
	if code, m = e.do(t, "carol", "POST", "/v1/approvals/1/approve", `{}`); code != 403 {
		t.Fatalf("approve as auditor: %d %v", code, m)
	}
	if code, m = e.do(t, "ci-bot", "POST", "/v1/approvals/1/approve", `{}`); code != 403 || !strings.Contains(m["error"].(string), "own request") {
		t.Fatalf("self-approval: %d %v", code, m)
	}
	if code, m = e.do(t, "alice", "POST", "/v1/approvals/1/approve", ""); code != 415 {
		t.Fatalf("approve without JSON: %d %v", code, m)
	}
	if code, m = e.do(t, "alice", "POST", "/v1/approvals/1/approve", `{"reason": "ticket OPS-1"}`); code != 200 || m["status"] != "granted" || m["decided_by"] != "alice" {
		t.Fatalf("approve: %d %v", code, m)
	}
	if code, m = e.do(t, "bob", "POST", "/v1/approvals/1/deny", `{"reason": "no"}`); code != 409 || !strings.Contains(m["error"].(string), "already decided") {
		t.Fatalf("deny after approve: %d %v", code, m)
	}
	if code, _ = e.do(t, "bob", "POST", "/v1/approvals/2/deny", `{}`); code != 400 {
		t.Fatalf("deny without reason: %d", code)
	}
	if code, m = e.do(t, "bob", "POST", "/v1/approvals/2/deny", `{"reason": "too broad"}`); code != 200 || m["status"] != "denied" || m["reason"] != "too broad" {
		t.Fatalf("deny: %d %v", code, m)
	}
	if code, _ = e.do(t, "bob", "POST", "/v1/approvals/2/deny", `{"reason": "x", "extra": 1}`); code != 400 {
		t.Fatalf("unknown field: %d", code)
	}
	if code, _ = e.do(t, "alice", "GET", "/v1/approvals/1/approve", ""); code != 405 {
		t.Fatalf("GET approve: %d", code)
	}
	if code, m = e.do(t, "alice", "GET", "/v1/approvals", ""); code != 200 || len(m["approvals"].([]any)) != 1 {
		t.Fatalf("pending after decisions: %d %v", code, m)
	}
	if code, m = e.do(t, "alice", "GET", "/v1/approvals?status=all", ""); code != 200 || len(m["approvals"].([]any)) != 3 {
		t.Fatalf("all: %d %v", code, m)
	}
	if code, _ = e.do(t, "alice", "GET", "/v1/approvals?status=bogus", ""); code != 400 {
		t.Fatalf("bad status: %d", code)
	}
	var types []string
	for _, ev := range e.rec.events {
		types = append(types, ev.Type)
	}
	joined := strings.Join(types, ",")
	for _, want := range []string{approval.TypeGranted, approval.TypeDenied, approval.TypeRefused, TypeAdminRefused} {
		if !strings.Contains(joined, want) {
			t.Errorf("audit lacks %s: %v", want, types)
		}
	}
}

func TestApprovalRoutesAbsentWithoutService(t *testing.T) {
	e := newApprovalsAPI(t)
	srv := httptest.NewServer(New(Options{Authority: nil, Audit: e.rec.append}))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/approvals/1/approve", "application/json", bytes.NewReader([]byte(`{}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}
