package approval

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-gw/weir/internal/audit"
	"github.com/weir-gw/weir/internal/identity"
	"github.com/weir-gw/weir/internal/store"
)

type auditLog struct {
	mu     sync.Mutex
	events []audit.Event
	fail   atomic.Bool
}

func (a *auditLog) append(_ context.Context, ev audit.Event) error {
	if a.fail.Load() {
		return errors.New("audit down")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
	return nil
}

func (a *auditLog) types() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.events {
		out = append(out, e.Type)
	}
	return out
}

func (a *auditLog) count(typ string) int {
	n := 0
	for _, t := range a.types() {
		if t == typ {
			n++
		}
	}
	return n
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	dir   string
	st    *store.SQLite
	log   *auditLog
	clock *clock
	svc   *Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := store.OpenSQLite(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{dir: dir, st: st, log: &auditLog{}, clock: &clock{t: time.Now()}}
	e.svc = e.service(t, st)
	return e
}

func (e *env) service(t *testing.T, st store.ApprovalStore) *Service {
	t.Helper()
	svc, err := New(Options{Store: st, Audit: e.log.append, Timeout: time.Minute, GrantTTL: 15 * time.Minute, Poll: 20 * time.Millisecond, Now: e.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

var (
	alice = Approver{Name: "alice", Role: identity.RoleApprover, TokenID: "adm_a"}
	bob   = Approver{Name: "bob", Role: identity.RoleAdmin, TokenID: "adm_b"}
	carol = Approver{Name: "carol", Role: identity.RoleAuditor, TokenID: "adm_c"}
)

const stmt = "DELETE FROM orders WHERE created_at < $1"

func req(mode string) Req {
	return Req{Agent: "ci-bot", Target: "orders", SessionID: "s1", TokenID: "tok1", Context: map[string]string{"run": "42", "actor": "dave"},
		Statements: []string{stmt}, Fingerprint: "fp1", Params: [][]byte{[]byte("2020-01-01")}, Rule: "review-prod-writes", Mode: mode, Preview: "~1200 rows"}
}

func key() GrantKey {
	return GrantKey{Agent: "ci-bot", Target: "orders", Fingerprint: "fp1", Statements: []string{stmt}, ParamsHash: HashParams([][]byte{[]byte("2020-01-01")})}
}

func TestRequestApproveDeny(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p, err := e.svc.Request(ctx, req(""))
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != 1 || p.Mode != ModeHold || !p.ExpiresAt.Equal(e.clock.now().Add(time.Minute)) {
		t.Fatalf("pending = %+v", p)
	}
	p2, err := e.svc.Request(ctx, req(ModeAsync))
	if err != nil || p2.ID != 2 {
		t.Fatalf("second id = %d, %v", p2.ID, err)
	}
	list, err := e.svc.List(ctx, StatusPending, 0)
	if err != nil || len(list) != 2 {
		t.Fatalf("list = %v, %v", list, err)
	}
	d, err := e.svc.Approve(ctx, 1, alice, "looks right")
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != StatusGranted || d.By != "alice" || d.Reason != "looks right" || !d.GrantExpiresAt.Equal(e.clock.now().Add(15*time.Minute)) {
		t.Fatalf("decision = %+v", d)
	}
	if _, err := e.svc.Deny(ctx, 2, bob, ""); !errors.Is(err, ErrReasonRequired) {
		t.Fatalf("deny without reason: %v", err)
	}
	if d, err = e.svc.Deny(ctx, 2, bob, "not during business hours"); err != nil || d.Status != StatusDenied {
		t.Fatalf("deny = %+v, %v", d, err)
	}
	v, err := e.svc.Get(ctx, 2)
	if err != nil || v.Status != StatusDenied || v.DecidedBy != "bob" || v.Reason != "not during business hours" {
		t.Fatalf("view = %+v, %v", v, err)
	}
	if _, err := e.svc.Get(ctx, 99); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get 99: %v", err)
	}
	want := []string{TypeRequested, TypeRequested, TypeGranted, TypeDenied}
	if got := e.log.types(); len(got) != len(want) || got[2] != want[2] || got[3] != want[3] {
		t.Fatalf("audit = %v", got)
	}
	ev := e.log.events[2]
	data := ev.Data.(map[string]any)
	if data["by"] != "alice" || data["reason"] != "looks right" || ev.Agent != "ci-bot" {
		t.Fatalf("granted event = %+v", ev)
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.svc.Request(ctx, req("")); err != nil {
		t.Fatal(err)
	}
	for _, ap := range []Approver{
		{Name: "ci-bot", Role: identity.RoleApprover},
		{Name: "CI-Bot", Role: identity.RoleAdmin},
		{Name: "dave", Role: identity.RoleApprover}, // context actor
	} {
		if _, err := e.svc.Approve(ctx, 1, ap, ""); !errors.Is(err, ErrSelfApproval) {
			t.Errorf("%s: want self-approval refused, got %v", ap.Name, err)
		}
	}
	if _, err := e.svc.Approve(ctx, 1, carol, ""); !errors.Is(err, ErrRole) {
		t.Errorf("auditor: %v", err)
	}
	if _, err := e.svc.Approve(ctx, 1, alice, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Approve(ctx, 1, bob, ""); !errors.Is(err, ErrAlreadyDecided) {
		t.Errorf("double approve: %v", err)
	}
	if _, err := e.svc.Deny(ctx, 1, bob, "no"); !errors.Is(err, ErrAlreadyDecided) {
		t.Errorf("deny after approve: %v", err)
	}
	if _, err := e.svc.Approve(ctx, 7, bob, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	if e.log.count("approval.refused") != 3 {
		t.Errorf("refused self-approvals audited: %v", e.log.types())
	}
	// An admin token's own record ("admin:NAME") as agent.
	r := store.ApprovalRequest{Agent: "admin:alice"}
	if !IsSelf(r, "alice") || IsSelf(r, "bob") {
		t.Error("IsSelf on admin:alice")
	}
}

func TestExpiry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.svc.Request(ctx, req(ModeHold)); err != nil {
		t.Fatal(err)
	}
	e.clock.add(time.Minute)
	if _, err := e.svc.Approve(ctx, 1, alice, ""); !errors.Is(err, ErrExpired) {
		t.Fatalf("approve after timeout: %v", err)
	}
	v, _ := e.svc.Get(ctx, 1)
	if v.Status != StatusExpired {
		t.Fatalf("status = %s", v.Status)
	}
	d, err := e.svc.Wait(ctx, 1)
	if err != nil || d.Status != StatusExpired {
		t.Fatalf("wait = %+v, %v", d, err)
	}
	if n := e.log.count(TypeExpired); n != 1 {
		t.Fatalf("expired audited %d times", n)
	}
}

func TestWaitTimesOut(t *testing.T) {
	e := newEnv(t)
	svc, _ := New(Options{Store: e.st, Audit: e.log.append, Timeout: 150 * time.Millisecond, Poll: 20 * time.Millisecond})
	ctx := context.Background()
	p, err := svc.Request(ctx, req(""))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d, err := svc.Wait(ctx, p.ID)
	if err != nil || d.Status != StatusExpired {
		t.Fatalf("wait = %+v, %v", d, err)
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 2*time.Second {
		t.Fatalf("waited %s", el)
	}
}

func TestWaitWakesInProcess(t *testing.T) {
	e := newEnv(t)
	svc, _ := New(Options{Store: e.st, Audit: e.log.append, Poll: time.Hour}) // no polling: only the in-process wake-up
	ctx := context.Background()
	p, err := svc.Request(ctx, req(""))
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan time.Time, 1)
	var d Decision
	go func() {
		d, err = svc.Wait(ctx, p.ID)
		res <- time.Now()
	}()
	time.Sleep(50 * time.Millisecond)
	approved := time.Now()
	if _, err := svc.Approve(ctx, p.ID, alice, "ok"); err != nil {
		t.Fatal(err)
	}
	woke := <-res
	if err != nil || d.Status != StatusGranted {
		t.Fatalf("wait = %+v, %v", d, err)
	}
	if lat := woke.Sub(approved); lat > 100*time.Millisecond {
		t.Fatalf("woke %s after approval", lat)
	}
	// Wait claimed the single use: a replay does not pass.
	if ok, err := svc.Consume(ctx, key()); ok || err != nil {
		t.Fatalf("consume after hold use = %v, %v", ok, err)
	}
	if e.log.count(TypeUsed) != 1 {
		t.Fatalf("audit = %v", e.log.types())
	}
}

func TestWaitSeesOtherProcess(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st2, err := store.OpenSQLite(e.dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	other := e.service(t, st2)
	for _, deny := range []bool{false, true} {
		p, err := e.svc.Request(ctx, req(""))
		if err != nil {
			t.Fatal(err)
		}
		res := make(chan Decision, 1)
		go func() {
			d, err := e.svc.Wait(ctx, p.ID)
			if err != nil {
				t.Error(err)
			}
			res <- d
		}()
		time.Sleep(30 * time.Millisecond)
		decided := time.Now()
		if deny {
			_, err = other.Deny(ctx, p.ID, bob, "no")
		} else {
			_, err = other.Approve(ctx, p.ID, bob, "")
		}
		if err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-res:
			want := StatusGranted
			if deny {
				want = StatusDenied
			}
			if d.Status != want {
				t.Fatalf("status %s, want %s", d.Status, want)
			}
			if lat := time.Since(decided); lat > time.Second {
				t.Fatalf("noticed after %s", lat)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Wait did not notice the other process's decision")
		}
	}
}

func TestWaitContextEndsLeavesPending(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	p, err := e.svc.Request(context.Background(), req(""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Wait(ctx, p.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait: %v", err)
	}
	// Approved after the client went away: a replay of the same command uses it once.
	if _, err := e.svc.Approve(context.Background(), p.ID, alice, ""); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.svc.Consume(context.Background(), key()); !ok || err != nil {
		t.Fatalf("consume = %v, %v", ok, err)
	}
}

func TestConsumeBinding(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p, err := e.svc.Request(ctx, req(ModeAsync))
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.svc.Consume(ctx, key()); ok {
		t.Fatal("pending request consumed")
	}
	if _, err := e.svc.Approve(ctx, p.ID, alice, ""); err != nil {
		t.Fatal(err)
	}
	variants := map[string]func(k *GrantKey){
		"other agent":       func(k *GrantKey) { k.Agent = "other-bot" },
		"other target":      func(k *GrantKey) { k.Target = "billing" },
		"other fingerprint": func(k *GrantKey) { k.Fingerprint = "fp2" },
		"other statement":   func(k *GrantKey) { k.Statements = []string{"DELETE FROM orders WHERE created_at < $1 OR true"} },
		"other params":      func(k *GrantKey) { k.ParamsHash = HashParams([][]byte{[]byte("2030-01-01")}) },
		"null param":        func(k *GrantKey) { k.ParamsHash = HashParams([][]byte{nil}) },
		"no params":         func(k *GrantKey) { k.ParamsHash = HashParams(nil) },
	}
	for name, f := range variants {
		k := key()
		f(&k)
		if ok, err := e.svc.Consume(ctx, k); ok || err != nil {
			t.Errorf("%s: consume = %v, %v", name, ok, err)
		}
	}
	k := key()
	k.Statements = []string{"  " + stmt + ";\n"} // surrounding whitespace and ';' aside
	if ok, err := e.svc.Consume(ctx, k); !ok || err != nil {
		t.Fatalf("consume = %v, %v", ok, err)
	}
	if ok, _ := e.svc.Consume(ctx, key()); ok {
		t.Fatal("second use passed")
	}
}

func TestConsumeConcurrentSingleUse(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	st2, err := store.OpenSQLite(e.dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	other := e.service(t, st2)
	for round := 0; round < 3; round++ {
		p, err := e.svc.Request(ctx, req(ModeAsync))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Approve(ctx, p.ID, alice, ""); err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			svc := e.svc
			if i%2 == 1 {
				svc = other
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := svc.Consume(ctx, key())
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d consumers won", round, wins.Load())
		}
	}
}

func TestGrantExpires(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p, _ := e.svc.Request(ctx, req(ModeAsync))
	if _, err := e.svc.Approve(ctx, p.ID, alice, ""); err != nil {
		t.Fatal(err)
	}
	e.clock.add(15 * time.Minute)
	if ok, err := e.svc.Consume(ctx, key()); ok || err != nil {
		t.Fatalf("expired grant consumed: %v, %v", ok, err)
	}
}

func TestRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p1, _ := e.svc.Request(ctx, req(ModeHold))
	p2, _ := e.svc.Request(ctx, req(ModeAsync))
	if _, err := e.svc.Approve(ctx, p2.ID, alice, ""); err != nil {
		t.Fatal(err)
	}
	e.st.Close()
	st, err := store.OpenSQLite(e.dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := e.service(t, st)
	list, err := svc.List(ctx, StatusPending, 0)
	if err != nil || len(list) != 1 || list[0].ID != p1.ID || list[0].Statements[0] != stmt || list[0].Context["run"] != "42" {
		t.Fatalf("pending after restart = %+v, %v", list, err)
	}
	if ok, err := svc.Consume(ctx, key()); !ok || err != nil {
		t.Fatalf("grant after restart: %v, %v", ok, err)
	}
	p3, _ := svc.Request(ctx, req(""))
	if p3.ID != 3 {
		t.Fatalf("id after restart = %d", p3.ID)
	}
}

func TestUnauditedFailsClosed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.log.fail.Store(true)
	if _, err := e.svc.Request(ctx, req(ModeAsync)); !errors.Is(err, ErrUnaudited) {
		t.Fatalf("request: %v", err)
	}
	v, _ := e.svc.Get(ctx, 1)
	if v.Status != StatusDenied {
		t.Fatalf("unaudited request status = %s", v.Status)
	}
	e.log.fail.Store(false)
	p, _ := e.svc.Request(ctx, req(ModeAsync))
	e.log.fail.Store(true)
	if _, err := e.svc.Approve(ctx, p.ID, alice, ""); !errors.Is(err, ErrUnaudited) {
		t.Fatalf("approve: %v", err)
	}
	e.log.fail.Store(false)
	if ok, _ := e.svc.Consume(ctx, key()); ok {
		t.Fatal("unaudited grant was usable")
	}
}

func TestSweepBackground(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.svc.Request(ctx, req(ModeAsync))
	e.clock.add(25 * time.Hour)
	e.svc.Start(10 * time.Millisecond)
	defer e.svc.Close()
	deadline := time.Now().Add(2 * time.Second)
	for e.log.count(TypeExpired) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.log.count(TypeExpired) != 1 {
		t.Fatal("async request not expired by the sweeper")
	}
}

func TestLatest(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.svc.Latest(ctx, key()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("latest before any: %v", err)
	}
	e.svc.Request(ctx, req(ModeAsync))
	p2, _ := e.svc.Request(ctx, req(ModeAsync))
	if _, err := e.svc.Deny(ctx, p2.ID, alice, "not now"); err != nil {
		t.Fatal(err)
	}
	v, err := e.svc.Latest(ctx, KeyOf(req(ModeAsync)))
	if err != nil || v.ID != p2.ID || v.Status != StatusDenied || v.Reason != "not now" {
		t.Fatalf("latest = %+v, %v", v, err)
	}
	k := key()
	k.ParamsHash = HashParams(nil)
	if _, err := e.svc.Latest(ctx, k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("latest with other params: %v", err)
	}
}
