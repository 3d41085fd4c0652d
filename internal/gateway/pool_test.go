package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-gw/weir/internal/identity"
)

// One session per token and target, shared by concurrent requests; a
// session in use is never reaped; an idle one is, and so is one the
// gateway ended (revoked token), after which the token is verified again.
func TestSessionPool(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	p := w.g.NewSessionPool(time.Minute, clock)
	defer p.Close()
	tok, claims, err := w.auth.Issue(ctx, identity.IssueRequest{Agent: "ci-bot", Targets: []string{"shop"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	req := AuthRequest{Protocol: "blob", Token: tok, Target: "shop"}

	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, release, err := p.Acquire(ctx, req)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = s.ID
			release()
		}()
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("concurrent requests got sessions %v", ids)
		}
	}
	// By token id (a front end that proved possession of a derived key)
	// it is another session key, but the same token.
	byID, releaseID, err := p.Acquire(ctx, AuthRequest{Protocol: "blob", TokenID: claims.ID, Target: "shop"})
	if err != nil || byID.Claims.ID != claims.ID {
		t.Fatalf("by id: %v", err)
	}
	if p.Len() != 2 {
		t.Fatalf("%d sessions", p.Len())
	}

	// Idle with nothing in flight: reaped; in use: kept however long the
	// request runs (a 1 GiB upload).
	now.Add(int64(2 * time.Minute))
	p.sweep()
	if p.Len() != 1 {
		t.Fatalf("%d sessions left, want the one in use", p.Len())
	}
	releaseID()
	now.Add(int64(2 * time.Minute))
	p.sweep()
	if p.Len() != 0 {
		t.Fatalf("idle sessions not reaped (%d left)", p.Len())
	}
	select {
	case <-byID.Done():
		t.Fatal("idle end is not a gateway termination")
	default:
	}

	// Revoked: the pooled session is dropped and the token refused.
	s, release, err := p.Acquire(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if err := w.auth.Revoke(ctx, claims.ID, "test"); err != nil {
		t.Fatal(err)
	}
	s.terminate("token revoked")
	if _, _, err := p.Acquire(ctx, req); err == nil {
		t.Fatal("a revoked token got a session")
	}
}
