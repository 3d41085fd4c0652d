package blob

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/policy"
)

// weir's error codes. Azure's own (AuthorizationPermissionMismatch,
// AuthorizationFailure, AuthenticationFailed) would do, but az replaces
// their messages with advice about Azure roles and network rules, and the
// agent would never read what weir says to do instead.
const (
	CodeDenied  = "WeirPolicyDenied"
	CodeReview  = "WeirApprovalRequired"
	CodeAuth    = "WeirAuthenticationFailed"
	CodeNoAuth  = "WeirNoAuthentication"
	CodeRefused = "WeirRequestRefused"
)

// writeError answers in Azure Storage's error shape, so SDKs and az show
// the code and weir's message.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><Error><Code>`)
	xml.EscapeText(&b, []byte(code))
	b.WriteString(`</Code><Message>`)
	xml.EscapeText(&b, []byte(msg))
	b.WriteString(`</Message></Error>`)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("x-ms-error-code", code)
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// forwardHeaders are the standard request headers weir passes upstream;
// of the rest only x-ms-* pass. Everything else (cookies, proxies,
// Expect, Accept-Encoding) stays at weir.
var forwardHeaders = []string{"Content-Type", "Content-Encoding", "Content-Language", "Content-MD5", "Range",
	"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"}

// refusedHeaders carry a credential of the agent's own, or make Azure
// read a URL weir does not check.
var refusedHeaders = []string{"x-ms-copy-source-authorization", "x-ms-previous-snapshot-url"}

// upstreamHeaders copies what may go upstream from the agent's headers.
func upstreamHeaders(in http.Header) (http.Header, string) {
	out := http.Header{}
	for _, k := range forwardHeaders {
		if v := in.Values(k); len(v) > 0 {
			out[http.CanonicalHeaderKey(k)] = v // the signer looks headers up canonically
		}
	}
	for k, v := range in {
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, "x-ms-") {
			continue
		}
		for _, r := range refusedHeaders {
			if lk == r {
				return nil, fmt.Sprintf("weir does not accept the header %s from an agent (a credential of its own, or a URL weir does not check)", k)
			}
		}
		if lk == "x-ms-date" {
			continue
		}
		if len(v) != 1 {
			// weir checks one value; Azure must not pick another.
			return nil, fmt.Sprintf("the header %s appears more than once", k)
		}
		out[http.CanonicalHeaderKey(k)] = v
	}
	return out, ""
}

// copyCheck admits an x-ms-copy-source only from the target's own account
// or its copy_sources, and returns the source as "account/container/blob".
func (up *upstream) copyCheck(src string) (string, error) {
	u, err := url.Parse(src)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("x-ms-copy-source must be an http(s) blob URL")
	}
	host := strings.ToLower(u.Hostname())
	account, path := "", u.EscapedPath()
	switch {
	case strings.HasSuffix(host, ".blob.core.windows.net"):
		account = strings.TrimSuffix(host, ".blob.core.windows.net")
	case strings.EqualFold(u.Host, up.base.Host):
		// Path-style (Azurite): the account is the first segment.
		first, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		account, path = first, "/"+rest
	default:
		return "", fmt.Errorf("x-ms-copy-source host %s is not a storage account weir may copy from (allowed: %s)", quote(u.Host), up.allowedSources())
	}
	if !up.copyFrom[account] {
		return "", fmt.Errorf("copying from storage account %s is not allowed: target %s may copy only from %s (copy_sources)", quote(account), up.target.Name, up.allowedSources())
	}
	p, err := CanonicalPath(path)
	if err != nil {
		return "", fmt.Errorf("x-ms-copy-source: %v", err)
	}
	if p.Blob == "" {
		return "", fmt.Errorf("x-ms-copy-source must name a blob")
	}
	return account + "/" + p.Resource(), nil
}

func (up *upstream) allowedSources() string {
	s := up.account
	for _, a := range up.target.Blob.CopySources {
		if a != up.account {
			s += ", " + a
		}
	}
	return s
}

// upstreamURL re-serializes the canonical path and query for upstream.
func (up *upstream) upstreamURL(p Path, q url.Values) *url.URL {
	u := *up.base
	basePath := strings.TrimSuffix(u.EscapedPath(), "/")
	esc := p.Escaped()
	if p.Container == "" && basePath != "" {
		esc = ""
	}
	u.RawPath = basePath + esc
	if u.RawPath == "" {
		u.RawPath = "/"
	}
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = q.Encode()
	return &u
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// serve classifies, decides and forwards one authenticated request.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, up *upstream, e *entry, rest string, q url.Values) {
	ctx := r.Context()
	// What the audit log shows of a request refused before it could be
	// classified: the request line as sent, bounded.
	asSent := []command.Command{{Protocol: Protocol, Method: r.Method, Text: r.Method + " " + quote(r.RequestURI)}}
	p, err := CanonicalPath(rest)
	if err != nil {
		h.refuse(w, r, e, asSent, http.StatusBadRequest, CodeRefused, err.Error())
		return
	}
	c, err := classify(r.Method, p, q, r.Header, up.copyCheck)
	if err != nil {
		h.refuse(w, r, e, asSent, http.StatusForbidden, CodeRefused, err.Error())
		return
	}
	hdr, bad := upstreamHeaders(r.Header)
	if bad != "" {
		h.refuse(w, r, e, []command.Command{c}, http.StatusForbidden, CodeRefused, bad)
		return
	}
	var body io.Reader = r.Body
	length := r.ContentLength
	cmds := []command.Command{c}
	if c.Operation == "BlobBatch" {
		b, err := h.prepareBatch(r, up, e, p, q)
		if err != nil {
			h.refuse(w, r, e, []command.Command{c}, http.StatusBadRequest, CodeRefused, err.Error())
			return
		}
		cmds = b.cmds
		body, length = bytes.NewReader(b.body), int64(len(b.body))
		hdr.Set("Content-Type", "multipart/mixed; boundary="+b.boundary)
	}
	if length > 0 && c.Operation != "BlobBatch" {
		// An approval is bound to the command's text: with the length (and
		// the client's own checksum, when it sent one) a grant for one
		// upload does not cover a different one of another size.
		cmds[0].Text += " (" + strconv.FormatInt(length, 10) + " bytes"
		if md5 := r.Header.Get("Content-MD5"); md5 != "" {
			cmds[0].Text += ", md5 " + md5
		}
		cmds[0].Text += ")"
	}
	if length < 0 {
		// Azure needs a length; a chunked upload cannot be signed.
		h.refuse(w, r, e, cmds, http.StatusLengthRequired, CodeRefused, "send Content-Length (weir does not forward chunked uploads)")
		return
	}
	v := e.s.Decide(ctx, gateway.Request{Commands: cmds, Via: "blob"})
	if !v.Allowed() {
		code := CodeDenied
		if v.Action == policy.Review {
			code = CodeReview
		}
		writeError(w, http.StatusForbidden, code, v.Public)
		return
	}
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, r.Method, "", body)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", "weir could not build the upstream request")
		return
	}
	req.URL = up.upstreamURL(p, q)
	req.Host = req.URL.Host
	req.Header = hdr
	req.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	req.Header.Set("Accept-Encoding", "identity")
	req.ContentLength = length
	if length == 0 {
		req.Body = http.NoBody
	}
	if length > 0 {
		req.Header.Set("Content-Length", strconv.FormatInt(length, 10))
	} else if r.Method == http.MethodPut || r.Method == http.MethodPost {
		req.Header.Set("Content-Length", "0")
	}
	signSharedKey(req, up.account, up.key)
	req.Header.Del("Content-Length") // the transport writes it from ContentLength
	resp, err := h.client.Do(req)
	if err != nil {
		h.log.Warn("blob: upstream request failed", "target", up.target.Name, "session", e.s.ID, "err", err)
		e.s.Result(gateway.Result{Seq: v.Seq, Duration: time.Since(start), Error: "upstream unreachable"})
		writeError(w, http.StatusBadGateway, "ServerBusy", "weir could not reach the storage account; try again later")
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.StatusCode != http.StatusNotModified {
		// A redirect would send the agent around weir (or name the upstream).
		e.s.Result(gateway.Result{Seq: v.Seq, Duration: time.Since(start), Error: "upstream redirect refused"})
		writeError(w, http.StatusBadGateway, "UnexpectedRedirect", "the storage account answered with a redirect, which weir does not pass on")
		return
	}
	listing := c.Operation == "ListBlobs" || c.Operation == "FindBlobsByTags"
	res, cut := h.respond(w, r, resp, listing)
	res.Seq, res.Duration = v.Seq, time.Since(start)
	e.s.Result(res)
	if cut {
		panic(http.ErrAbortHandler)
	}
}
