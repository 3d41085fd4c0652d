package approval

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/store"
)

func sampleView() View {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	return ViewOf(store.ApprovalRequest{ID: 42, Agent: "ci-bot", Target: "orders", Context: map[string]string{"run": "https://ci/run/7", "ticket": "OPS-1"},
		Statements: []string{"DELETE FROM orders WHERE created_at < '2020-01-01' AND note <> '<b>&'"}, Rule: "review-prod-writes", Mode: ModeHold,
		Preview: "Delete on orders (rows=1200)", Status: StatusPending, CreatedAt: now, ExpiresAt: now.Add(time.Minute)})
}

type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	calls  atomic.Int32
	fail   int32 // answer 500 to the first fail calls
	srv    *httptest.Server
}

func newReceiver(t *testing.T, fail int32) *receiver {
	r := &receiver{fail: fail}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := r.calls.Add(1)
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("got %s with %q", req.Method, req.Header.Get("Content-Type"))
		}
		b, _ := io.ReadAll(req.Body)
		if n <= r.fail {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) body(t *testing.T) map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bodies) != 1 {
		t.Fatalf("received %d bodies", len(r.bodies))
	}
	var m map[string]any
	if err := json.Unmarshal(r.bodies[0], &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func fastOpts() NotifierOptions {
	return NotifierOptions{Attempts: 4, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Timeout: time.Second}
}

func deliver(t *testing.T, kind string, fail int32) (*receiver, map[string]any) {
	t.Helper()
	r := newReceiver(t, fail)
	n := NewNotifier([]Destination{{Kind: kind, URL: r.srv.URL, Name: kind}}, fastOpts())
	n.Notify(sampleView())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return r, r.body(t)
}

func TestWebhookFormat(t *testing.T) {
	_, m := deliver(t, config.NotifyWebhook, 0)
	if m["event"] != TypeRequested {
		t.Fatalf("event = %v", m["event"])
	}
	a := m["approval"].(map[string]any)
	if a["id"].(float64) != 42 || a["agent"] != "ci-bot" || a["target"] != "orders" || a["preview"] != "Delete on orders (rows=1200)" ||
		a["approve_command"] != "weir approvals approve 42" || !strings.Contains(a["deny_command"].(string), "weir approvals deny 42") ||
		a["context"].(map[string]any)["ticket"] != "OPS-1" || a["statements"].([]any)[0] != sampleView().Statements[0] {
		t.Fatalf("approval = %v", a)
	}
}

func TestSlackFormat(t *testing.T) {
	_, m := deliver(t, config.NotifySlack, 0)
	text, _ := m["text"].(string)
	if !strings.Contains(text, "ci-bot") || !strings.Contains(text, "&lt;b&gt;&amp;") {
		t.Fatalf("text = %q", text)
	}
	blocks := m["blocks"].([]any)
	var all strings.Builder
	for _, b := range blocks {
		bm := b.(map[string]any)
		switch bm["type"] {
		case "header":
			if bm["text"].(map[string]any)["type"] != "plain_text" {
				t.Error("header text must be plain_text")
			}
		case "section":
		default:
			t.Errorf("unexpected block type %v", bm["type"])
		}
		raw, _ := json.Marshal(bm)
		all.Write(raw)
	}
	s := all.String()
	for _, want := range []string{"ci-bot", "orders", "OPS-1", "rows=1200", "weir approvals approve 42", "weir approvals deny 42", "DELETE FROM orders", "```"} {
		if !strings.Contains(s, want) {
			t.Errorf("slack blocks lack %q", want)
		}
	}
}

func TestTeamsFormat(t *testing.T) {
	_, m := deliver(t, config.NotifyTeams, 0)
	if m["type"] != "message" {
		t.Fatalf("type = %v", m["type"])
	}
	atts := m["attachments"].([]any)
	if len(atts) != 1 {
		t.Fatalf("%d attachments", len(atts))
	}
	att := atts[0].(map[string]any)
	if att["contentType"] != "application/vnd.microsoft.card.adaptive" {
		t.Fatalf("contentType = %v", att["contentType"])
	}
	card := att["content"].(map[string]any)
	if card["type"] != "AdaptiveCard" || card["version"] == "" || card["$schema"] == nil {
		t.Fatalf("card = %v", card)
	}
	raw, _ := json.Marshal(card["body"])
	for _, want := range []string{"ci-bot", "orders", "OPS-1", "rows=1200", "weir approvals approve 42", "DELETE FROM orders", "FactSet", "Monospace"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("card body lacks %q", want)
		}
	}
}

func TestNotifyRetriesThenSucceeds(t *testing.T) {
	r, _ := deliver(t, config.NotifyWebhook, 2)
	if got := r.calls.Load(); got != 3 {
		t.Fatalf("%d calls, want 3 (two 500s then success)", got)
	}
}

func TestNotifyGivesUpWithoutBlocking(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	n := NewNotifier([]Destination{{Kind: config.NotifyWebhook, URL: srv.URL}}, fastOpts())
	start := time.Now()
	n.Notify(sampleView())
	if el := time.Since(start); el > 20*time.Millisecond {
		t.Fatalf("Notify blocked for %s", el)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 4 {
		t.Fatalf("%d attempts, want the bound 4", got)
	}
	// A 4xx is not retried.
	var calls4 atomic.Int32
	srv4 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls4.Add(1)
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer srv4.Close()
	n = NewNotifier([]Destination{{Kind: config.NotifySlack, URL: srv4.URL}}, fastOpts())
	n.Notify(sampleView())
	n.Flush(ctx)
	if calls4.Load() != 1 {
		t.Fatalf("4xx retried: %d calls", calls4.Load())
	}
}

func TestFailingNotifierKeepsRequest(t *testing.T) {
	e := newEnv(t)
	// Nothing listens here.
	n := NewNotifier([]Destination{{Kind: config.NotifyTeams, URL: "http://127.0.0.1:1/hook"}}, fastOpts())
	svc, _ := New(Options{Store: e.st, Audit: e.log.append, Notifier: n})
	start := time.Now()
	p, err := svc.Request(context.Background(), req(""))
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("request took %s", el)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.Flush(ctx)
	if v, err := svc.Get(context.Background(), p.ID); err != nil || v.Status != StatusPending {
		t.Fatalf("request after failed notification = %+v, %v", v, err)
	}
}

func TestDestinationsFromConfig(t *testing.T) {
	cfg := &config.Config{Approvals: config.Approvals{Notify: []config.Notify{{Kind: "slack", URLEnv: "WEIR_TEST_SLACK_URL"}}}}
	t.Setenv("WEIR_TEST_SLACK_URL", "")
	if _, err := DestinationsFromConfig(cfg); err == nil || !strings.Contains(err.Error(), "WEIR_TEST_SLACK_URL") {
		t.Fatalf("unset env: %v", err)
	}
	t.Setenv("WEIR_TEST_SLACK_URL", "https://hooks.slack.com/services/x")
	d, err := DestinationsFromConfig(cfg)
	if err != nil || len(d) != 1 || d[0].URL != "https://hooks.slack.com/services/x" || strings.Contains(d[0].Name, "hooks") {
		t.Fatalf("dests = %+v, %v", d, err)
	}
}

func TestFromConfig(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, 0)
	t.Setenv("WEIR_TEST_HOOK", r.srv.URL)
	cfg := &config.Config{Approvals: config.Approvals{Timeout: 30 * time.Second, GrantTTL: time.Minute, AsyncTimeout: time.Hour,
		Notify: []config.Notify{{Kind: config.NotifyWebhook, URLEnv: "WEIR_TEST_HOOK"}}}}
	svc, n, err := FromConfig(cfg, e.st, e.log.append, nil)
	if err != nil || n == nil {
		t.Fatalf("FromConfig: %v, %v", n, err)
	}
	p, err := svc.Request(context.Background(), req(""))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.ExpiresAt.Sub(p.CreatedAt); got != 30*time.Second {
		t.Fatalf("timeout %s", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if a := r.body(t)["approval"].(map[string]any); a["id"].(float64) != float64(p.ID) {
		t.Fatalf("webhook got %v", a)
	}
}
