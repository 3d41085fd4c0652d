package e2e

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/weir-gw/weir/internal/approval"
	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/proxy/postgres"
	"github.com/weir-gw/weir/internal/tlsutil"
)

// approvalWorld is weir with the approval workflow on: the e2e policy's
// review rule in the given mode.
func approvalWorld(t *testing.T, mode string) (*approval.Service, string) {
	return approvalWorldTimeout(t, mode, 5*time.Second)
}

func approvalWorldTimeout(t *testing.T, mode string, timeout time.Duration) (*approval.Service, string) {
	t.Helper()
	cfg := *env.cfg
	cfg.Policy.Rules = append([]config.Rule(nil), env.cfg.Policy.Rules...)
	for i := range cfg.Policy.Rules {
		if cfg.Policy.Rules[i].Action == "review" {
			cfg.Policy.Rules[i].Mode = mode
		}
	}
	cfg.Approvals.Timeout = timeout
	cfg.Approvals.GrantTTL = time.Minute
	cfg.Approvals.AsyncTimeout = time.Hour
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
	srv, err := postgres.NewServer(gw, tlsCfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Close)
	return svc, ln.Addr().String()
}

func agentConn(t *testing.T, addr string) *pgx.Conn {
	t.Helper()
	tok, _ := token(t, "ci-bot", time.Hour)
	h, p, _ := net.SplitHostPort(addr)
	conn, err := pgx.Connect(context.Background(), "host="+h+" port="+p+" dbname=shop user=ci-bot sslmode=require password="+tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// waitPending returns the pending request whose statement holds mark.
func waitPending(t *testing.T, svc *approval.Service, mark string) approval.View {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		views, err := svc.List(context.Background(), "pending", 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range views {
			if strings.Contains(strings.Join(v.Statements, ";"), mark) {
				return v
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no pending approval request appeared")
	return approval.View{}
}

// serverRan reports whether PostgreSQL saw the statement other than inside
// weir's EXPLAIN preview (which plans it without running it).
func serverRan(t *testing.T, mark string) bool {
	t.Helper()
	time.Sleep(20 * time.Millisecond)
	log, err := env.pg.Log()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, mark) && !strings.Contains(line, "EXPLAIN (FORMAT JSON)") {
			return true
		}
	}
	return false
}

// Hold then time out: the client gets a clear error naming the request,
// and nothing ran.
func TestApprovalHoldTimesOut(t *testing.T) {
	_, addr := approvalWorldTimeout(t, "hold", time.Second)
	conn := agentConn(t, addr)
	mark := marker(t)
	_, err := conn.Exec(context.Background(), mark+" DELETE FROM orders WHERE id = -9")
	if pgCode(err) != "42501" || !strings.Contains(err.Error(), "was not decided within 1s") {
		t.Fatalf("timeout: %v", err)
	}
	if serverRan(t, mark) {
		t.Fatal("timed-out statement reached PostgreSQL")
	}
}

var alice = approval.Approver{Name: "alice", Role: identity.RoleApprover}

// Hold: the statement waits, nothing reaches PostgreSQL until a human
// approves, then it runs and the client gets a normal result.
func TestApprovalHoldThenApprove(t *testing.T) {
	svc, addr := approvalWorld(t, "hold")
	conn := agentConn(t, addr)
	mark := marker(t)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := conn.Exec(context.Background(), mark+" UPDATE orders SET total_cents = total_cents WHERE id = 1")
		done <- err
	}()
	req := waitPending(t, svc, mark)
	if !strings.Contains(req.Preview, "EXPLAIN estimate: UPDATE on orders, about 1 rows") {
		t.Errorf("blast-radius preview %q", req.Preview)
	}
	if serverRan(t, mark) {
		t.Fatal("held statement reached PostgreSQL before approval")
	}
	// The requester cannot approve its own request.
	if _, err := svc.Approve(context.Background(), req.ID, approval.Approver{Name: "ci-bot", Role: identity.RoleApprover}, "me"); err == nil {
		t.Fatal("self-approval accepted")
	}
	approvedAt := time.Now()
	if _, err := svc.Approve(context.Background(), req.ID, alice, "checked"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("approved statement failed: %v", err)
		}
		t.Logf("approval to result: %s (held %s)", time.Since(approvedAt), time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("approved statement did not run")
	}
	if !serverRan(t, mark) {
		t.Fatal("approved statement never reached PostgreSQL")
	}
}

func TestApprovalHoldThenDeny(t *testing.T) {
	svc, addr := approvalWorld(t, "hold")
	conn := agentConn(t, addr)
	mark := marker(t)
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(context.Background(), mark+" DELETE FROM orders WHERE id = -5")
		done <- err
	}()
	req := waitPending(t, svc, mark)
	if _, err := svc.Deny(context.Background(), req.ID, alice, "not during the freeze"); err != nil {
		t.Fatal(err)
	}
	err := <-done
	if pgCode(err) != "42501" || !strings.Contains(err.Error(), "denied by alice: not during the freeze") {
		t.Fatalf("denied: %v", err)
	}
	if serverRan(t, mark) {
		t.Fatal("denied statement reached PostgreSQL")
	}
	if _, err := conn.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatalf("session unusable after a denial: %v", err)
	}
}

// Async: refused at once with the request id; once approved, the same
// command with the same parameters runs exactly once; another literal
// (simple protocol) or another parameter value (extended protocol) does not.
func TestApprovalAsyncGrantRunsOnce(t *testing.T) {
	svc, addr := approvalWorld(t, "async")
	conn := agentConn(t, addr)
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		exec, other func(mark string) error
	}{
		{"simple protocol", func(mark string) error {
			_, err := conn.Exec(ctx, mark+" UPDATE orders SET total_cents = total_cents WHERE id = 2")
			return err
		}, func(mark string) error {
			_, err := conn.Exec(ctx, mark+" UPDATE orders SET total_cents = total_cents WHERE id = 3")
			return err
		}},
		{"extended protocol", func(mark string) error {
			_, err := conn.Exec(ctx, mark+" UPDATE orders SET total_cents = total_cents WHERE id = $1", 2)
			return err
		}, func(mark string) error {
			_, err := conn.Exec(ctx, mark+" UPDATE orders SET total_cents = total_cents WHERE id = $1", 3)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := marker(t)
			err := tc.exec(mark)
			if pgCode(err) != "42501" || !strings.Contains(err.Error(), "Approval request") {
				t.Fatalf("first attempt: %v", err)
			}
			req := waitPending(t, svc, mark)
			if serverRan(t, mark) {
				t.Fatal("the refused command reached PostgreSQL")
			}
			if _, err := svc.Approve(ctx, req.ID, alice, "ok"); err != nil {
				t.Fatal(err)
			}
			if tc.other != nil {
				if err := tc.other(mark); pgCode(err) != "42501" {
					t.Fatalf("another statement ran on the grant: %v", err)
				}
			}
			if err := tc.exec(mark); err != nil {
				t.Fatalf("approved replay: %v", err)
			}
			if !serverRan(t, mark) {
				t.Fatal("approved command never reached PostgreSQL")
			}
			if err := tc.exec(mark); pgCode(err) != "42501" {
				t.Fatalf("second use of a single-use approval: %v", err)
			}
		})
	}
}

// TestApprovalLatency measures (without asserting: no timing thresholds in
// tests) the time from an approval to the held statement's result at the
// client. Printed with -v; recorded in bench/RESULTS.md.
func TestApprovalLatency(t *testing.T) {
	svc, addr := approvalWorld(t, "hold")
	conn := agentConn(t, addr)
	var lat []time.Duration
	for i := 0; i < 20; i++ {
		mark := marker(t)
		done := make(chan time.Time, 1)
		go func() {
			conn.Exec(context.Background(), mark+" UPDATE orders SET total_cents = total_cents WHERE id = 3")
			done <- time.Now()
		}()
		req := waitPending(t, svc, mark)
		at := time.Now()
		if _, err := svc.Approve(context.Background(), req.ID, alice, "bench"); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, (<-done).Sub(at))
	}
	slices.Sort(lat)
	t.Logf("approval to result over %d approvals: p50 %s, p95 %s, max %s", len(lat), lat[len(lat)/2], lat[len(lat)*95/100], lat[len(lat)-1])
}
