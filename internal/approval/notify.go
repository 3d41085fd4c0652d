package approval

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/weir-gw/weir/internal/config"
)

// Destination is one place new requests are announced.
type Destination struct {
	// Kind is config.NotifyWebhook, NotifySlack or NotifyTeams.
	Kind string
	URL  string
	// Name identifies it in logs (never the URL, which is a secret).
	Name string
}

// NotifierOptions bound delivery.
type NotifierOptions struct {
	// Attempts per destination (default 5); backoff starts at Backoff
	// (default 500ms), doubles, and is capped at MaxBackoff (default 30s).
	Attempts   int
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration
	// MaxInFlight bounds deliveries under way; beyond it new ones are
	// dropped with an error logged (default 1000). The request itself is
	// durable whatever happens here.
	MaxInFlight int
	Client      *http.Client
	Logger      *slog.Logger
}

// HTTPNotifier posts requests to webhooks (generic JSON, Slack, Teams) in
// the background, with bounded retries and exponential backoff. Notify
// never blocks and a failing destination never affects the request.
type HTTPNotifier struct {
	dests []Destination
	opts  NotifierOptions
	log   *slog.Logger

	mu       sync.Mutex
	inFlight int
	closed   bool
	stop     chan struct{}
	wg       sync.WaitGroup
}

// NewNotifier returns a notifier for dests.
func NewNotifier(dests []Destination, opts NotifierOptions) *HTTPNotifier {
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 1000
	}
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HTTPNotifier{dests: dests, opts: opts, log: log, stop: make(chan struct{})}
}

// DestinationsFromConfig reads approvals.notify, taking each URL from its
// environment variable; a missing or non-http(s) URL is an error.
func DestinationsFromConfig(cfg *config.Config) ([]Destination, error) {
	var out []Destination
	for i, n := range cfg.Approvals.Notify {
		raw := strings.TrimSpace(os.Getenv(n.URLEnv))
		if raw == "" {
			return nil, fmt.Errorf("approvals.notify[%d]: environment variable %s (the %s URL) is not set", i, n.URLEnv, n.Kind)
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("approvals.notify[%d]: %s does not hold an http(s) URL", i, n.URLEnv)
		}
		out = append(out, Destination{Kind: n.Kind, URL: raw, Name: fmt.Sprintf("%s (%s)", n.Kind, n.URLEnv)})
	}
	return out, nil
}

// Notify announces v to every destination in the background.
func (n *HTTPNotifier) Notify(v View) {
	for _, d := range n.dests {
		body, err := Payload(d.Kind, v)
		if err != nil {
			n.log.Error("approval notification: building payload", "dest", d.Name, "approval_id", v.ID, "err", err)
			continue
		}
		n.mu.Lock()
		if n.closed || n.inFlight >= n.opts.MaxInFlight {
			n.mu.Unlock()
			n.log.Error("approval notification dropped (notifier closed or too many deliveries under way)", "dest", d.Name, "approval_id", v.ID)
			continue
		}
		n.inFlight++
		n.wg.Add(1)
		n.mu.Unlock()
		go func(d Destination) {
			defer func() {
				n.mu.Lock()
				n.inFlight--
				n.mu.Unlock()
				n.wg.Done()
			}()
			if err := n.deliver(d, body); err != nil {
				n.log.Error("approval notification failed; the request stays pending (see weir approvals list)", "dest", d.Name, "approval_id", v.ID, "err", err)
			}
		}(d)
	}
}

// errPermanent is a refusal retrying cannot fix (a 4xx other than 408/429).
type errPermanent struct{ error }

func (n *HTTPNotifier) deliver(d Destination, body []byte) error {
	delay := n.opts.Backoff
	var err error
	for attempt := 1; attempt <= n.opts.Attempts; attempt++ {
		if err = n.post(d, body); err == nil {
			return nil
		}
		var perm errPermanent
		if errors.As(err, &perm) || attempt == n.opts.Attempts {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-n.stop:
			t.Stop()
			return fmt.Errorf("gave up at shutdown after %d attempts: %w", attempt, err)
		}
		delay = min(delay*2, n.opts.MaxBackoff)
	}
	return err
}

func (n *HTTPNotifier) post(d Destination, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return errPermanent{errors.New("invalid URL")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "weir-approvals")
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		// The URL (a secret) is in url.Error; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	default:
		return errPermanent{fmt.Errorf("HTTP %d (not retried)", resp.StatusCode)}
	}
}

// Close stops retrying and waits up to ctx for deliveries under way.
func (n *HTTPNotifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.stop)
	}
	n.mu.Unlock()
	return n.Flush(ctx)
}

// Flush waits up to ctx for the deliveries under way (retries included).
func (n *HTTPNotifier) Flush(ctx context.Context) error {
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Payload renders v for a destination kind.
func Payload(kind string, v View) ([]byte, error) {
	switch kind {
	case config.NotifyWebhook:
		return json.Marshal(map[string]any{"event": TypeRequested, "approval": v})
	case config.NotifySlack:
		return json.Marshal(slackPayload(v))
	case config.NotifyTeams:
		return json.Marshal(teamsPayload(v))
	}
	return nil, fmt.Errorf("unknown notification kind %q", kind)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

func title(v View) string {
	return fmt.Sprintf("weir approval request %d: %s on %s", v.ID, v.Agent, v.Target)
}

func contextLines(ctx map[string]string) []string {
	keys := make([]string, 0, len(ctx))
	for k := range ctx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + ctx[k]
	}
	return out
}

// slackEscape escapes the three characters Slack's mrkdwn reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func slackText(s string) map[string]any { return map[string]any{"type": "mrkdwn", "text": s} }

// slackPayload is an incoming-webhook message: text (the notification
// fallback) and Block Kit blocks (section text at most 3000 characters,
// header 150, fields 2000).
func slackPayload(v View) map[string]any {
	ctx := strings.Join(contextLines(v.Context), ", ")
	if ctx == "" {
		ctx = "(none)"
	}
	fields := []any{
		slackText("*Agent*\n" + slackEscape(truncate(v.Agent, 1900))),
		slackText("*Target*\n" + slackEscape(truncate(v.Target, 1900))),
		slackText("*Rule*\n" + slackEscape(truncate(v.Rule, 1900))),
		slackText("*Mode*\n" + v.Mode),
		slackText("*Context*\n" + slackEscape(truncate(ctx, 1900))),
		slackText("*Expires*\n" + v.ExpiresAt.Format(time.RFC3339)),
	}
	blocks := []any{
		map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": truncate(title(v), 150)}},
		map[string]any{"type": "section", "fields": fields},
	}
	for i, st := range v.Statements {
		if i == 20 {
			blocks = append(blocks, map[string]any{"type": "section", "text": slackText(fmt.Sprintf("… and %d more statements (weir approvals show %d)", len(v.Statements)-i, v.ID))})
			break
		}
		blocks = append(blocks, map[string]any{"type": "section", "text": slackText("```" + slackEscape(truncate(st, 2900)) + "```")})
	}
	if v.Preview != "" {
		blocks = append(blocks, map[string]any{"type": "section", "text": slackText("*Blast radius*\n" + slackEscape(truncate(v.Preview, 2900)))})
	}
	blocks = append(blocks, map[string]any{"type": "section", "text": slackText(
		"*Decide*\n`" + v.ApproveCommand + "`\n`" + v.DenyCommand + "`")})
	text := fmt.Sprintf("%s (rule %s): %s", title(v), v.Rule, truncate(strings.Join(v.Statements, "; "), 300))
	return map[string]any{"text": slackEscape(text), "blocks": blocks}
}

// teamsPayload is a message with one Adaptive Card attachment, the form
// Teams incoming webhooks and Workflows ("post to a channel when a webhook
// request is received") accept.
func teamsPayload(v View) map[string]any {
	facts := []any{
		map[string]any{"title": "Agent", "value": v.Agent},
		map[string]any{"title": "Target", "value": v.Target},
		map[string]any{"title": "Rule", "value": v.Rule},
		map[string]any{"title": "Mode", "value": v.Mode},
		map[string]any{"title": "Expires", "value": v.ExpiresAt.Format(time.RFC3339)},
	}
	for _, l := range contextLines(v.Context) {
		k, val, _ := strings.Cut(l, "=")
		facts = append(facts, map[string]any{"title": "Context " + k, "value": truncate(val, 500)})
	}
	body := []any{
		map[string]any{"type": "TextBlock", "text": title(v), "weight": "Bolder", "size": "Medium", "wrap": true},
		map[string]any{"type": "FactSet", "facts": facts},
		map[string]any{"type": "TextBlock", "text": "Statement(s)", "weight": "Bolder", "wrap": true},
	}
	for i, st := range v.Statements {
		if i == 20 {
			body = append(body, map[string]any{"type": "TextBlock", "text": fmt.Sprintf("… and %d more (weir approvals show %d)", len(v.Statements)-i, v.ID), "wrap": true})
			break
		}
		body = append(body, map[string]any{"type": "TextBlock", "text": truncate(st, 4000), "fontType": "Monospace", "wrap": true})
	}
	if v.Preview != "" {
		body = append(body,
			map[string]any{"type": "TextBlock", "text": "Blast radius", "weight": "Bolder", "wrap": true},
			map[string]any{"type": "TextBlock", "text": truncate(v.Preview, 4000), "fontType": "Monospace", "wrap": true})
	}
	body = append(body,
		map[string]any{"type": "TextBlock", "text": "Decide", "weight": "Bolder", "wrap": true},
		map[string]any{"type": "TextBlock", "text": v.ApproveCommand + "\n\n" + v.DenyCommand, "fontType": "Monospace", "wrap": true})
	card := map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"type":    "AdaptiveCard",
		"version": "1.4",
		"body":    body,
		"msteams": map[string]any{"width": "Full"},
	}
	return map[string]any{
		"type": "message",
		"attachments": []any{map[string]any{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"contentUrl":  nil,
			"content":     card,
		}},
	}
}
