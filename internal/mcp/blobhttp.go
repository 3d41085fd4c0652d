package mcp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
)

// errCut is what the Blob front end's writes get once the tool has read
// what it needs and closed the response.
var errCut = errors.New("weir: the tool stopped reading the response")

// blobDo sends one Blob REST request to weir's own Blob front end,
// in-process: the request carries the agent's weir token as a bearer
// token, so the front end authenticates, classifies, decides, audits and
// masks it exactly as it would a request from the agent's SDK. The MCP
// server adds nothing to the decision. uri is the origin-form request
// target (/blob/<target>/...?...), which the front end canonicalizes
// itself. The response body streams from the handler as it writes;
// closing it early cuts the handler's response (the front end records
// the result as not completed).
func (s *Server) blobDo(ctx context.Context, a *AgentSession, method, uri string, hdr http.Header, body []byte) (*http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	r, err := http.NewRequestWithContext(ctx, method, "http://weir-internal"+uri, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	// A server-side request, as net/http would hand it to the handler.
	r.RequestURI = uri
	r.RemoteAddr = a.ClientAddr()
	r.Host = "weir-internal"
	r.Header = hdr.Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	r.Header.Set("Authorization", "Bearer "+a.Token())
	r.Header.Set("User-Agent", "weir-mcp")
	r.ContentLength = int64(len(body))
	r.Body = http.NoBody
	if len(body) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	pr, pw := io.Pipe()
	rw := &pipeResponse{header: http.Header{}, pw: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			p := recover()
			switch {
			case p == nil:
				rw.WriteHeader(http.StatusOK)
				pw.Close()
			case p == http.ErrAbortHandler:
				// The front end cut its response (a limit reached, or
				// the tool stopped reading): a failure, never a short
				// body that looks complete.
				rw.WriteHeader(http.StatusBadGateway)
				pw.CloseWithError(errors.New("weir: the Blob front end cut the response"))
			default:
				s.log.Error("mcp: the Blob front end panicked", "panic", p)
				rw.WriteHeader(http.StatusInternalServerError)
				pw.CloseWithError(errors.New("weir: the Blob front end failed"))
			}
		}()
		s.opts.Blob.ServeHTTP(rw, r)
	}()
	// The header comes when the front end has decided (and, for a held
	// command, when the approver has); a cancelled call ends the handler
	// through the request's context, which then writes its header.
	<-rw.ready
	return &http.Response{
		Status: http.StatusText(rw.status), StatusCode: rw.status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rw.sent, Body: &pipeBody{pr: pr, cancel: cancel}, ContentLength: -1, Request: r,
	}, nil
}

// pipeResponse is the handler's ResponseWriter: the header is handed over
// once written, the body streams through a pipe.
type pipeResponse struct {
	header http.Header
	sent   http.Header
	status int
	pw     *io.PipeWriter
	ready  chan struct{}
	once   sync.Once
}

func (p *pipeResponse) Header() http.Header { return p.header }

func (p *pipeResponse) WriteHeader(code int) {
	p.once.Do(func() {
		p.status, p.sent = code, p.header.Clone()
		close(p.ready)
	})
}

func (p *pipeResponse) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return p.pw.Write(b)
}

// Flush is a no-op: every Write reaches the reader already.
func (p *pipeResponse) Flush() {}

type pipeBody struct {
	pr     *io.PipeReader
	cancel context.CancelFunc
}

func (b *pipeBody) Read(p []byte) (int, error) { return b.pr.Read(p) }

func (b *pipeBody) Close() error {
	b.pr.CloseWithError(errCut)
	b.cancel()
	return nil
}
