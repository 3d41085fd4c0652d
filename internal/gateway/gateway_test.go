package gateway

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/store"
)

const testConfig = `listen: {postgres: "127.0.0.1:0"}
targets:
  - {name: shop, kind: postgres, address: "127.0.0.1:5432", database: shop, username: u, password_env: P, labels: {env: prod}}
  - {name: other, kind: postgres, address: "127.0.0.1:5432", database: other, username: u, password_env: P}
agents:
  - {name: ci-bot, targets: [shop], max_ttl: 1h}
policy:
  rules:
    - {name: no-ddl, when: 'command.kind == "ddl"', action: deny, message: "open a change request"}
    - {name: review-writes, when: 'command.writes', action: review}
    - {name: reads, when: 'command.kind == "read"', action: allow}
`

type world struct {
	g    *Gateway
	auth *identity.Authority
	st   *store.SQLite
}

func newWorld(t testing.TB) *world {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse("weir.yaml", []byte("data_dir: "+dir+"\n"+testConfig))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := identity.NewAuthority(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	aw, err := audit.NewWriter(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, st, auth, aw, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { aw.Close(); st.Close() })
	return &world{g: g, auth: auth, st: st}
}

func (w *world) session(t testing.TB) *Session {
	t.Helper()
	tok, _, err := w.auth.Issue(context.Background(), identity.IssueRequest{Agent: "ci-bot", Targets: []string{"shop"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s, err := w.g.Authenticate(context.Background(), AuthRequest{Protocol: "postgres", Token: tok, Target: "shop", User: "ci-bot"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthenticateRefusals(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	tok, _, _ := w.auth.Issue(ctx, identity.IssueRequest{Agent: "ci-bot", Targets: []string{"shop"}, TTL: time.Hour})
	ghost, _, _ := w.auth.Issue(ctx, identity.IssueRequest{Agent: "ghost", Targets: []string{"shop"}, TTL: time.Hour})
	tests := []struct {
		req  AuthRequest
		want string
	}{
		{AuthRequest{Token: tok, Target: "other", User: "ci-bot"}, `not valid for target "other"`},
		{AuthRequest{Token: tok, Target: "nosuch", User: "ci-bot"}, `no target "nosuch"`},
		{AuthRequest{Token: tok, Target: "shop", User: "someone"}, "must be the agent"},
		{AuthRequest{Token: ghost, Target: "shop", User: "ghost"}, `agent "ghost" is not configured`},
		{AuthRequest{Token: "x.y.z", Target: "shop"}, "malformed"},
	}
	for _, tc := range tests {
		_, err := w.g.Authenticate(ctx, tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.req.Target, err, tc.want)
		}
	}
}

func TestDecideMessagesAndCache(t *testing.T) {
	w := newWorld(t)
	s := w.session(t)
	ctx := context.Background()
	drop := []command.Command{{Verb: "DROP TABLE", Kind: command.KindDDL, Text: "DROP TABLE t"}}
	v := s.Decide(ctx, Request{Commands: drop, Via: "query"})
	if v.Allowed() || v.Rule != "no-ddl" || !strings.Contains(v.Public, "open a change request") || v.SQLState != "42501" {
		t.Fatalf("ddl verdict %+v", v)
	}
	del := []command.Command{{Verb: "DELETE", Kind: command.KindWrite, Writes: []string{"t"}, Risks: []command.Risk{command.RiskWritableCTE}}}
	v = s.Decide(ctx, Request{Commands: del})
	if v.Action != "review" || !strings.Contains(v.Public, "needs a human's approval") || !strings.Contains(v.Public, "[writable_cte]") {
		t.Fatalf("review verdict %+v", v)
	}
	read := []command.Command{{Verb: "SELECT", Kind: command.KindRead}}
	for i := 0; i < 3; i++ {
		if v := s.Decide(ctx, Request{Commands: read}); !v.Allowed() || v.Seq != int64(3+i) {
			t.Fatalf("read verdict %+v", v)
		}
	}
	if len(s.cache) != 3 {
		t.Fatalf("cache holds %d command lists, want 3", len(s.cache))
	}
	v = s.Decide(ctx, Request{Commands: read, Refusal: "unknown statement"})
	if v.Allowed() || v.Public != "unknown statement" {
		t.Fatalf("a refusal was not honoured: %+v", v)
	}
	s.terminate("weir token was revoked")
	if v := s.Decide(ctx, Request{Commands: read}); v.Allowed() || !strings.Contains(v.Public, "revoked") {
		t.Fatalf("ended session still allowed: %+v", v)
	}
}

// BenchmarkDecide is the gateway's share of a statement: policy (cached
// per command list), audit encoding and the durable append.
func BenchmarkDecide(b *testing.B) {
	w := newWorld(b)
	s := w.session(b)
	ctx := context.Background()
	read := []command.Command{{Protocol: "postgres", Verb: "SELECT", Kind: command.KindRead, Text: "SELECT abalance FROM pgbench_accounts WHERE aid = $1", Reads: []string{"pgbench_accounts"}}}
	b.ReportAllocs()
	for b.Loop() {
		if v := s.Decide(ctx, Request{Commands: read, Via: "execute"}); !v.Allowed() {
			b.Fatal(v)
		}
	}
}
