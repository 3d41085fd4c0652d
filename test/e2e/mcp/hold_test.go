package mcp

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/identity"
	weirmcp "github.com/weir-gw/weir/internal/mcp"
	"github.com/weir-gw/weir/internal/proxy/postgres"
	"github.com/weir-gw/weir/internal/tlsutil"
)

// holdWorld is a second weir on the same store whose review rule holds
// the statement until a person decides (mode hold), served over MCP.
func holdWorld(t *testing.T) (*approval.Service, string) {
	t.Helper()
	cfg := *env.cfg
	cfg.Policy.Rules = append([]config.Rule(nil), env.cfg.Policy.Rules...)
	for i := range cfg.Policy.Rules {
		if cfg.Policy.Rules[i].Action == "review" {
			cfg.Policy.Rules[i].Mode = "hold"
		}
	}
	cfg.Approvals.Timeout = 20 * time.Second
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	gw, err := gateway.New(&cfg, env.st, env.auth, env.aw, log)
	if err != nil {
		t.Fatal(err)
	}
	svc, _, err := approval.FromConfig(&cfg, env.st, env.aw.Append, log)
	if err != nil {
		t.Fatal(err)
	}
	gw.SetApprovals(svc)
	tlsCfg, err := tlsutil.ServerConfig("", "", env.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := postgres.NewServer(gw, tlsCfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	srv := weirmcp.New(weirmcp.Options{Gateway: gw, Auth: env.auth, Postgres: pg, Approvals: svc, Logger: log})
	t.Cleanup(srv.Close)
	mux := http.NewServeMux()
	mux.Handle(weirmcp.Path, srv.Handler())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return svc, hs.URL + weirmcp.Path
}

// In hold mode the query call waits for the person, as psql does, and
// runs when approved; the agent learns the request id from the listing an
// approver sees.
func TestHeldQueryRunsWhenApproved(t *testing.T) {
	svc, url := holdWorld(t)
	tok, _ := token(t, "ci-bot")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearerTransport{tok}}, MaxRetries: -1}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e-hold", Version: "1"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	before := orderTotal(t, 99)
	mark := "/*hold-" + identity.RandomID(6) + "*/"
	sql := "UPDATE orders SET total_cents = total_cents + 1 WHERE id = 99 " + mark
	go func() {
		// The person approves the held request once it shows up.
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			list, _ := svc.List(context.Background(), approval.StatusPending, 100)
			for _, v := range list {
				if len(v.Statements) == 1 && v.Statements[0] == sql {
					svc.Approve(context.Background(), v.ID, approval.Approver{Name: "carol", Role: identity.RoleApprover}, "ok")
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	var out weirmcp.QueryResult
	if text, isErr := call(t, cs, "query", map[string]any{"target": "shop", "sql": sql}, &out); isErr || out.Command != "UPDATE 1" {
		t.Fatalf("held query: %s %+v", text, out)
	}
	if got := orderTotal(t, 99); got != before+1 {
		t.Errorf("total %d, want %d", got, before+1)
	}
	// A denial comes back as a tool error with the approver's reason.
	sql2 := "UPDATE orders SET total_cents = 0 WHERE id = 98 " + mark
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			list, _ := svc.List(context.Background(), approval.StatusPending, 100)
			for _, v := range list {
				if len(v.Statements) == 1 && v.Statements[0] == sql2 {
					svc.Deny(context.Background(), v.ID, approval.Approver{Name: "carol", Role: identity.RoleApprover}, "zeroing an order is never right")
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	var f weirmcp.ToolFailure
	if _, isErr := call(t, cs, "query", map[string]any{"target": "shop", "sql": sql2}, &f); !isErr || f.ApprovalRequestID == 0 {
		t.Fatalf("denied held query: %+v", f)
	}
	if !strings.Contains(f.Error, "zeroing an order is never right") {
		t.Errorf("denial reason missing: %+v", f)
	}
	var n int
	if err := pgSuper(t).QueryRow(context.Background(), "SELECT total_cents FROM orders WHERE id = 98").Scan(&n); err != nil || n == 0 {
		t.Errorf("the denied update ran: %d %v", n, err)
	}
}
