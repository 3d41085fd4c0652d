package mcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BridgeOptions configure Bridge.
type BridgeOptions struct {
	// URL is weir's streamable-HTTP MCP endpoint (https://host:port/mcp).
	URL string
	// Token is the agent's weir token, sent as the bearer token.
	Token string
	// HTTPClient trusts weir's certificate (nil: http.DefaultClient's
	// transport).
	HTTPClient *http.Client
	// Local is the agent's side (default: stdin/stdout).
	Local mcp.Transport
}

// Bridge relays MCP messages between a local client (stdio) and weir's
// streamable-HTTP endpoint until either side ends. It holds no upstream
// credential and decides nothing: it is only another way to reach the one
// MCP server, where every check happens. A refusal of the token ends the
// bridge with weir's reason.
func Bridge(ctx context.Context, o BridgeOptions) error {
	if o.Token == "" {
		return errors.New("no weir token: set WEIR_TOKEN (weir token issue --agent NAME)")
	}
	base := http.DefaultTransport
	if o.HTTPClient != nil && o.HTTPClient.Transport != nil {
		base = o.HTTPClient.Transport
	}
	bt := &bearer{base: base, token: o.Token}
	remoteT := &mcp.StreamableClientTransport{Endpoint: o.URL, HTTPClient: &http.Client{Transport: bt},
		// Server-initiated messages are not used by weir's tools.
		DisableStandaloneSSE: true}
	local := o.Local
	if local == nil {
		local = &mcp.StdioTransport{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lc, err := local.Connect(ctx)
	if err != nil {
		return err
	}
	defer lc.Close()
	rc, err := remoteT.Connect(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()

	var (
		mu      sync.Mutex
		fatal   error
		writeMu sync.Mutex // the local side takes one message at a time
	)
	stop := func(err error) {
		mu.Lock()
		if fatal == nil {
			fatal = err
		}
		mu.Unlock()
		cancel()
	}
	toLocal := func(msg jsonrpc.Message) {
		writeMu.Lock()
		defer writeMu.Unlock()
		if err := lc.Write(ctx, msg); err != nil {
			stop(nil)
		}
	}
	// weir → agent.
	go func() {
		for {
			msg, err := rc.Read(ctx)
			if err != nil {
				if ctx.Err() == nil {
					stop(bt.explain(err))
				}
				return
			}
			toLocal(msg)
		}
	}()
	// agent → weir. Calls are sent concurrently, so a long call (a
	// statement held for approval) does not hold back the others or a
	// cancellation.
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		msg, err := lc.Read(ctx)
		if err != nil {
			mu.Lock()
			f := fatal
			mu.Unlock()
			if f != nil {
				return f
			}
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil // the agent went away
			}
			return err
		}
		req, isCall := msg.(*jsonrpc.Request)
		isCall = isCall && req.IsCall()
		send := func() {
			err := rc.Write(ctx, msg)
			if err == nil || !isCall {
				if err != nil && ctx.Err() == nil {
					stop(bt.explain(err))
				}
				return
			}
			// Answer the call, so the agent sees why instead of hanging.
			var werr *jsonrpc.Error
			if !errors.As(err, &werr) {
				werr = &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: bt.explain(err).Error()}
			}
			toLocal(&jsonrpc.Response{ID: req.ID, Error: werr})
			if bt.refused() {
				stop(bt.explain(err))
			}
		}
		if isCall && req.Method != "initialize" {
			wg.Add(1)
			go func() { defer wg.Done(); send() }()
		} else {
			send()
		}
	}
}

// bearer adds the weir token to every request to weir, and keeps weir's
// reason when it refuses the token (the SDK reports only the status).
type bearer struct {
	base  http.RoundTripper
	token string

	mu     sync.Mutex
	reason string
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := b.base.RoundTrip(r)
	if err != nil || (resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden) {
		return resp, err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	b.mu.Lock()
	b.reason = fmt.Sprintf("weir refused the token (%d): %s", resp.StatusCode, strings.TrimSpace(string(body)))
	b.mu.Unlock()
	return resp, nil
}

func (b *bearer) refused() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reason != ""
}

func (b *bearer) explain(err error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reason != "" {
		return errors.New(b.reason + "; get a new token (weir token issue --agent NAME) and restart weir mcp")
	}
	return fmt.Errorf("weir MCP endpoint: %w", err)
}
