package mcp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/proxy/azure"
)

// azure_request is an ordinary client of weir's Azure HTTPS proxy, like
// `az` with HTTPS_PROXY set: it dials listen.azure_proxy, CONNECTs to the
// target's host, trusts weir's own CA for the intercepted TLS session and
// sends the request with the agent's weir token as bearer. Classification,
// policy, approval, audit, the upstream credential and masking are all
// the proxy's; the tool only shapes the request and the answer (caps,
// continuations, refusals a model can act on).

// AzureProxy is how the MCP server reaches weir's Azure HTTPS proxy.
type AzureProxy struct {
	// URL is the proxy (http://host:port of listen.azure_proxy).
	URL *url.URL
	// RootCAs hold weir's own CA, which signs the proxy's leaf
	// certificates; nothing else is trusted, so the tool can only ever
	// talk to weir's interception.
	RootCAs *x509.CertPool
}

var azureKinds = []string{config.KindAzureARM, config.KindAzureKeyVault, config.KindAzureFunctions}

func isAzureKind(kind string) bool { return slices.Contains(azureKinds, kind) }

const (
	// maxAzureResponse bounds what the tool reads of an answer; the proxy
	// itself refuses upstream bodies over azure.max_body_bytes.
	maxAzureResponse = 64 << 20
	// maxAzureErrorBody is how much of Azure's own error body a failure
	// shows.
	maxAzureErrorBody = 4 << 10
	maxAzurePath      = 8 << 10
)

func init() {
	for _, k := range azureKinds {
		RegisterKindTools(k, "azure_request", "approval_status")
		OfferOnlyWith(k, "azure_request")
	}
}

const azureRequestDescription = `Send one REST request to an Azure target through weir: Azure Resource Manager (ARM, management.azure.com), a Key Vault, or a Functions app. It takes the same way as az and the Azure SDKs (weir's Azure HTTPS proxy), so the same policy, approvals, audit log and masking apply. You hold no Azure credential: weir checks your weir token and, only once the policy allowed the request, sends it upstream with its own Entra token (or function key).
Give target (an azure-arm, azure-keyvault or azure-functions target from list_targets), method (GET, PUT, PATCH, POST, DELETE or HEAD) and path: the request path with its query, as in the Azure REST API reference, e.g. /subscriptions/{subscriptionId}/resourceGroups?api-version=2022-09-01. ARM and Key Vault paths need exactly one api-version (Key Vault e.g. /secrets/{name}?api-version=7.4); Functions paths are the trigger's route (/api/orders/42). For PUT, PATCH and POST give body as a JSON object (or as a string holding the JSON text, to send it byte for byte).
The answer is the HTTP status and the response body as weir passed it on: storage keys, connection strings, secret values, SAS tokens and personal data come back masked. That is expected; do not try to recover them. Set reveal to true only when the task needs a secret's value itself: it asks to see secret values unmasked, which policies normally send to a person for approval.
Long answers are cut at max_bytes (default 65536): narrow the request ($filter, $top, $select) or call again with offset set to next_offset (re-sends a GET). Lists continue with next_link: call azure_request with method GET and path set to next_link.
Plan within the policy (list_targets summarises it; for example reads allowed, writes only in some resource groups, listKeys and secret reads after approval, role assignments denied). A refused call names the rule and the next step: a denied request is denied again if retried; one that needs approval gives an approval request id: follow it with approval_status, then send exactly the same request again (same target, method, path, body and reveal); it runs once.`

type azureRequestIn struct {
	Target   string `json:"target" jsonschema:"the azure-arm, azure-keyvault or azure-functions target (see list_targets)"`
	Method   string `json:"method" jsonschema:"GET, PUT, PATCH, POST, DELETE or HEAD"`
	Path     string `json:"path" jsonschema:"the path with its query, e.g. /subscriptions/{id}/resourceGroups?api-version=2022-09-01, or a next_link from a previous answer"`
	Body     any    `json:"body,omitempty" jsonschema:"the JSON body of a PUT, PATCH or POST: an object, or a string holding the JSON text"`
	Reveal   bool   `json:"reveal,omitempty" jsonschema:"ask to see secret values unmasked (needs the policy's approval; only when the task needs the value itself)"`
	Offset   int64  `json:"offset,omitempty" jsonschema:"where to start in the (masked) response, in bytes: next_offset of a cut answer"`
	MaxBytes int    `json:"max_bytes,omitempty" jsonschema:"at most this many bytes of the response (default 65536, at most 262144)"`
}

// AzureResult is azure_request's structured content.
type AzureResult struct {
	Target string `json:"target"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Status int    `json:"status"`
	// ContentType is the response's; Body the masked response from Offset.
	ContentType string `json:"content_type,omitempty"`
	Body        string `json:"body,omitempty"`
	Offset      int64  `json:"offset"`
	Bytes       int    `json:"bytes"`
	TotalBytes  int    `json:"total_bytes"`
	Truncated   bool   `json:"truncated"`
	NextOffset  int64  `json:"next_offset,omitempty"`
	// NextLink is the list's continuation (nextLink), read from the whole
	// response even when Body is cut.
	NextLink string `json:"next_link,omitempty"`
	// Headers are the response headers a caller acts on (long-running
	// operations: Location, Azure-AsyncOperation, Retry-After).
	Headers      map[string]string `json:"headers,omitempty"`
	Continuation string            `json:"continuation,omitempty"`
}

// AzureFailure is the structured content of a refused or failed request.
type AzureFailure struct {
	ToolFailure
	// Code is weir's (AuthorizationFailed for a policy refusal,
	// InvalidRequest, InvalidApiVersion, …) or Azure's own error code.
	Code   string `json:"code,omitempty"`
	Status int    `json:"status,omitempty"`
	// Body is Azure's own error response (masked), when it sent one.
	Body string `json:"body,omitempty"`
}

var azureMethods = []string{"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"}

// surfacedHeaders are the response headers an answer shows.
var surfacedHeaders = []string{"Location", "Azure-AsyncOperation", "Operation-Location", "Retry-After", "ETag"}

func registerAzure(s *Server) {
	c := newAzureClient(s.opts.Azure)
	AddTool(s, &mcp.Tool{Name: "azure_request", Title: "Call an Azure REST API through weir", Description: azureRequestDescription,
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), OpenWorldHint: ptr(false)}},
		func(ctx context.Context, a *AgentSession, in azureRequestIn) (*mcp.CallToolResult, any) {
			return s.azureRequest(ctx, c, a, in)
		})
}

// newAzureClient is an HTTPS client whose only way out is weir's proxy and
// whose only trust is weir's CA. Redirects are the caller's to see: the
// proxy never follows them either.
func newAzureClient(p *AzureProxy) *http.Client {
	tr := &http.Transport{
		Proxy:               http.ProxyURL(p.URL),
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: p.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 15 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     60 * time.Second,
		// The proxy answers identity; transparent decompression would
		// only hide what was sent.
		DisableCompression: true,
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func azureFail(f *AzureFailure) (*mcp.CallToolResult, any) {
	text := f.Error
	if f.Body != "" {
		text += "\nResponse: " + f.Body
	}
	if f.NextStep != "" {
		text += "\nNext step: " + f.NextStep
	}
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: text}}}, f
}

func badAzureArgs(format string, args ...any) *AzureFailure {
	return &AzureFailure{ToolFailure: ToolFailure{Error: "weir: " + fmt.Sprintf(format, args...), NextStep: "fix the arguments and call azure_request again"}}
}

// azureTarget checks that name is one of the token's Azure targets, for a
// clear answer; the proxy refuses a target the token does not cover on
// its own.
func (s *Server) azureTarget(a *AgentSession, name string) (*config.Target, *AzureFailure) {
	t, ok := s.opts.Gateway.Config().Target(name)
	if !ok || !a.Claims.AllowsTarget(name) {
		return nil, &AzureFailure{ToolFailure: ToolFailure{Error: fmt.Sprintf("weir: %q is not one of your targets", name), NextStep: "call list_targets to see your targets"}}
	}
	if !isAzureKind(t.Kind) {
		return nil, &AzureFailure{ToolFailure: ToolFailure{Error: fmt.Sprintf("weir: target %q is a %s target; azure_request acts on azure-arm, azure-keyvault and azure-functions targets only", name, t.Kind), NextStep: "call list_targets to see which tools fit each target"}}
	}
	if len(t.Azure.Hosts) == 0 {
		return nil, &AzureFailure{ToolFailure: ToolFailure{Error: fmt.Sprintf("weir: target %q names no host the proxy intercepts", name), NextStep: "tell the user: the weir operator must set the target's hosts"}}
	}
	return t, nil
}

// azureRequestTarget turns the path argument into the host to CONNECT to
// and the origin-form request target. An absolute URL (a nextLink, an
// Azure-AsyncOperation URL) is accepted when its host is one of the
// target's: the proxy rewrites links to the host the agent uses, so that
// is what comes back. Anything else about the path (encoding, dot
// segments, api-version) is the proxy's to judge.
func azureRequestTarget(hosts []string, path string) (host, uri string, f *AzureFailure) {
	path = strings.TrimSpace(path)
	switch {
	case path == "":
		return "", "", badAzureArgs("path is empty: give the request path with its query, e.g. /subscriptions?api-version=2022-12-01")
	case len(path) > maxAzurePath:
		return "", "", badAzureArgs("path is %d bytes; at most %d", len(path), maxAzurePath)
	case strings.ContainsAny(path, "\x00\r\n\t #"):
		return "", "", badAzureArgs("path %q holds a space, a control character or a #: percent-encode it (%%20, %%23)", truncate(path, 200))
	}
	host = hosts[0]
	if !strings.HasPrefix(path, "/") {
		u, err := url.Parse(path)
		if err != nil || !u.IsAbs() {
			return "", "", badAzureArgs("path %q must start with / (or be an https URL of this target, such as a next_link)", truncate(path, 200))
		}
		h := strings.ToLower(u.Host)
		if u.Port() == "443" {
			h = strings.ToLower(u.Hostname())
		}
		if u.Scheme != "https" || u.User != nil || !slices.Contains(hosts, h) {
			return "", "", badAzureArgs("%s is not a URL of this target (its hosts: %s); give the path alone, or a next_link this target returned", truncate(path, 200), strings.Join(hosts, ", "))
		}
		host = h
		if u.RawPath != "" {
			path = u.RawPath
		} else {
			path = u.EscapedPath()
		}
		if path == "" {
			path = "/"
		}
		if u.RawQuery != "" || u.ForceQuery {
			path += "?" + u.RawQuery
		}
	}
	if strings.HasPrefix(path, "//") {
		return "", "", badAzureArgs("path %q starts with //: give one leading /", truncate(path, 200))
	}
	return host, path, nil
}

// azureBody encodes the body argument: a string is the JSON text itself
// (sent byte for byte, so a model can keep key order and large numbers),
// anything else is marshalled. The proxy checks the JSON itself (H13).
func azureBody(body any) ([]byte, *AzureFailure) {
	switch b := body.(type) {
	case nil:
		return nil, nil
	case string:
		if strings.TrimSpace(b) == "" {
			return nil, nil
		}
		if !json.Valid([]byte(b)) {
			return nil, badAzureArgs("body is a string but not JSON text; give a JSON object (or its text)")
		}
		return []byte(b), nil
	default:
		out, err := json.Marshal(b)
		if err != nil {
			return nil, badAzureArgs("body cannot be encoded as JSON: %v", err)
		}
		return out, nil
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func (s *Server) azureRequest(ctx context.Context, c *http.Client, a *AgentSession, in azureRequestIn) (*mcp.CallToolResult, any) {
	method := strings.ToUpper(strings.TrimSpace(in.Method))
	note := map[string]any{"target": in.Target, "method": method, "path": truncate(in.Path, 512)}
	t, f := s.azureTarget(a, in.Target)
	if f != nil {
		a.noteAzureFailure(note, f)
		return azureFail(f)
	}
	if !slices.Contains(azureMethods, method) {
		return azureFail(badAzureArgs("method %q: use one of %s", in.Method, strings.Join(azureMethods, ", ")))
	}
	host, uri, f := azureRequestTarget(t.Azure.Hosts, in.Path)
	if f != nil {
		return azureFail(f)
	}
	body, f := azureBody(in.Body)
	if f != nil {
		return azureFail(f)
	}
	if len(body) > 0 && (method == "GET" || method == "HEAD" || method == "DELETE") {
		return azureFail(badAzureArgs("a %s takes no body; leave body out (or use PUT, PATCH or POST)", method))
	}
	if in.Reveal && t.Kind == config.KindAzureFunctions {
		return azureFail(badAzureArgs("reveal applies to ARM and Key Vault secrets only; a Functions answer is always masked"))
	}
	if in.Offset < 0 {
		return azureFail(badAzureArgs("offset is negative"))
	}
	if in.Offset > 0 && method != "GET" {
		// Another window re-sends the request: harmless for a read, a
		// second write or action otherwise.
		return azureFail(badAzureArgs("offset re-sends the request, which only a GET may do; the first answer of a %s is all there is", method))
	}
	maxBytes := in.MaxBytes
	switch {
	case maxBytes <= 0:
		maxBytes = defaultReadBytes
	case maxBytes > maxReadBytes:
		maxBytes = maxReadBytes
	}

	var rb io.Reader = http.NoBody
	if len(body) > 0 {
		rb = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+host+uri, rb)
	if err != nil {
		return azureFail(badAzureArgs("path %q is not a valid request target (percent-encode what is not a URL character)", truncate(in.Path, 200)))
	}
	req.Header.Set("Authorization", "Bearer "+a.Token())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "weir-mcp")
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	if in.Reveal {
		req.Header.Set("X-Weir-Reveal", "1")
		note["reveal"] = true
	}
	resp, err := c.Do(req)
	if err != nil {
		f := s.azureTransportFailure(ctx, host, err)
		a.noteAzureFailure(note, f)
		return azureFail(f)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAzureResponse+1))
	if err != nil || len(b) > maxAzureResponse {
		f := &AzureFailure{Status: resp.StatusCode, ToolFailure: ToolFailure{Error: "weir: the answer was cut before its end or is too large to read", NextStep: "narrow the request ($filter, $top, $select) and call again"}}
		a.noteAzureFailure(note, f)
		return azureFail(f)
	}
	note["status"] = resp.StatusCode
	if resp.Header.Get("x-ms-weir") == "refused" || resp.StatusCode >= 400 {
		f := explainAzureError(resp.StatusCode, resp.Header.Get("x-ms-weir") == "refused", b, s.opts.Gateway.Config().Policy.Rules)
		a.noteAzureFailure(note, f)
		return azureFail(f)
	}
	out := azureAnswer(in, t.Name, method, resp, b, maxBytes)
	note["outcome"], note["bytes"], note["truncated"] = "ok", out.TotalBytes, out.Truncated
	a.Note("azure_request", note)
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: renderAzure(out)}}}, out
}

// azureAnswer cuts the masked response to the window asked for and finds
// its continuations.
func azureAnswer(in azureRequestIn, target, method string, resp *http.Response, b []byte, maxBytes int) *AzureResult {
	out := &AzureResult{Target: target, Method: method, Path: strings.TrimSpace(in.Path), Status: resp.StatusCode,
		ContentType: resp.Header.Get("Content-Type"), Offset: in.Offset, TotalBytes: len(b)}
	for _, h := range surfacedHeaders {
		if v := resp.Header.Get(h); v != "" {
			if out.Headers == nil {
				out.Headers = map[string]string{}
			}
			out.Headers[h] = v
		}
	}
	out.NextLink = nextLink(b)
	if in.Offset < int64(len(b)) {
		end := min(int64(len(b)), in.Offset+int64(maxBytes))
		truncated := end < int64(len(b))
		shown, lead := answerText(b[in.Offset:end], truncated)
		out.Body, out.Bytes, out.Truncated = string(shown), len(shown), truncated
		out.Offset += int64(lead)
		if truncated {
			out.NextOffset = out.Offset + int64(len(shown))
		}
	}
	var hints []string
	if out.Truncated {
		hints = append(hints, fmt.Sprintf("the answer is %d bytes and was cut: call azure_request again with the same arguments and offset %d, or narrow the request ($filter, $top, $select)", out.TotalBytes, out.NextOffset))
	}
	if out.NextLink != "" {
		hints = append(hints, fmt.Sprintf("there are more results: call azure_request with target %q, method GET and path %q", target, out.NextLink))
	}
	if op := firstNonEmpty(out.Headers["Azure-AsyncOperation"], out.Headers["Location"], out.Headers["Operation-Location"]); op != "" && (resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusCreated) {
		hints = append(hints, fmt.Sprintf("the operation runs on in Azure: follow it with azure_request GET %s", op))
	}
	out.Continuation = strings.Join(hints, "; ")
	return out
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// nextLink finds the continuation of an ARM or Key Vault list.
func nextLink(b []byte) string {
	var page struct {
		NextLink      *string `json:"nextLink"`
		ODataNextLink *string `json:"@odata.nextLink"`
	}
	if json.Unmarshal(b, &page) != nil {
		return ""
	}
	for _, l := range []*string{page.NextLink, page.ODataNextLink} {
		if l != nil && *l != "" {
			return *l
		}
	}
	return ""
}

func renderAzure(r *AzureResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s on %s: %d %s", r.Method, r.Path, r.Target, r.Status, http.StatusText(r.Status))
	if r.ContentType != "" {
		fmt.Fprintf(&b, " (%s)", r.ContentType)
	}
	for _, h := range surfacedHeaders {
		if v := r.Headers[h]; v != "" && h != "ETag" {
			fmt.Fprintf(&b, "\n%s: %s", h, v)
		}
	}
	switch {
	case r.TotalBytes == 0:
		b.WriteString("\n(no body)")
	case r.Truncated:
		fmt.Fprintf(&b, "\nbytes %d-%d of %d (masked by weir), more follows:\n", r.Offset, r.Offset+int64(r.Bytes), r.TotalBytes)
	case r.Offset >= int64(r.TotalBytes):
		fmt.Fprintf(&b, "\noffset %d is past the end of the answer (%d bytes)", r.Offset, r.TotalBytes)
	case r.Offset > 0:
		fmt.Fprintf(&b, "\nbytes %d-%d (the end) of %d (masked by weir):\n", r.Offset, r.Offset+int64(r.Bytes), r.TotalBytes)
	default:
		b.WriteString("\n")
	}
	b.WriteString(r.Body)
	if r.Continuation != "" {
		b.WriteString("\n[" + r.Continuation + "]")
	}
	return b.String()
}

func (a *AgentSession) noteAzureFailure(data map[string]any, f *AzureFailure) {
	data["outcome"] = "failed"
	if f.Code != "" {
		data["code"] = f.Code
	}
	if f.Rule != "" {
		data["outcome"], data["rule"] = "refused", f.Rule
	}
	if f.ApprovalRequestID != 0 {
		data["approval_id"] = f.ApprovalRequestID
	}
	a.Note("azure_request", data)
}

func (s *Server) azureTransportFailure(ctx context.Context, host string, err error) *AzureFailure {
	if ctx.Err() != nil {
		return &AzureFailure{ToolFailure: ToolFailure{Error: "weir: the call was cancelled before it finished; if it was a write, check its effect with a GET before sending it again", NextStep: "call it again if needed"}}
	}
	s.log.Warn("mcp: azure request through the proxy failed", "host", host, "err", err)
	// Go reports a refused CONNECT with the proxy's status line.
	if strings.Contains(err.Error(), "Forbidden") {
		return &AzureFailure{ToolFailure: ToolFailure{Error: fmt.Sprintf("weir: the Azure proxy does not intercept %s", host), NextStep: "tell the user: the target's hosts and the proxy's configuration disagree (weir's log has the cause)"}}
	}
	return &AzureFailure{ToolFailure: ToolFailure{Error: "weir: the request could not be sent through weir's Azure proxy", NextStep: "try again; if it keeps failing, ask the weir operator (weir's log has the cause)"}}
}

// armError is the error shape of ARM, Key Vault and of weir's proxy.
type armError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// explainAzureError turns an error answer into a failure the model can act
// on: weir's refusals (x-ms-weir: refused) name the rule and an approval
// request; Azure's own errors say what Azure said.
func explainAzureError(status int, weir bool, body []byte, rules []config.Rule) *AzureFailure {
	f := &AzureFailure{Status: status}
	var e armError
	if json.Unmarshal(body, &e) == nil {
		f.Code = e.Error.Code
	}
	msg := strings.TrimSpace(e.Error.Message)
	if !weir {
		if f.Code != "" {
			f.Error = fmt.Sprintf("Azure answered %d %s: %s", status, f.Code, truncate(msg, 2000))
		} else {
			f.Error = fmt.Sprintf("Azure answered %d %s", status, http.StatusText(status))
			if len(body) > 0 {
				f.Body = truncate(strings.TrimSpace(string(body)), maxAzureErrorBody)
			}
		}
		switch {
		case status == http.StatusNotFound:
			f.NextStep = "check the path (subscription, resource group, names) with a GET of the parent list"
		case status == http.StatusTooManyRequests || status >= 500:
			f.NextStep = "try again later"
		case strings.Contains(strings.ToLower(f.Code+" "+msg), "apiversion") || strings.Contains(strings.ToLower(msg), "api-version") || strings.Contains(strings.ToLower(msg), "api version"):
			f.NextStep = "use an api-version this resource type supports (the error lists them)"
		default:
			f.NextStep = "fix the request as Azure's error says"
		}
		return f
	}
	if msg == "" {
		msg = "weir refused the request"
	}
	f.Error = msg
	switch {
	case status == http.StatusUnauthorized:
		f.NextStep = "your weir token was refused (expired or revoked?): the user must issue a new one and restart the MCP connection"
	case f.Code == "AuthorizationFailed":
		f.Rule = "weir"
		if m := ruleRe.FindStringSubmatch(msg); m != nil {
			f.Rule = strings.TrimSuffix(m[1], " (approved)")
		} else if strings.Contains(msg, "default deny") {
			f.Rule = "default-deny"
		}
		for _, r := range rules {
			if r.Name == f.Rule {
				f.RuleAction = r.Action
			}
		}
		if m := approvalRe.FindStringSubmatch(msg); m != nil {
			id := m[1]
			if id == "" {
				id = m[2]
			}
			f.ApprovalRequestID, _ = strconv.ParseInt(id, 10, 64)
		}
		switch {
		case f.ApprovalRequestID != 0 && strings.Contains(msg, "was denied"):
			f.NextStep = "a person denied it: do not retry; change the approach or ask the user"
		case f.ApprovalRequestID != 0:
			f.NextStep = fmt.Sprintf("a person must approve request %d (weir approvals approve %d). Check it with approval_status {\"id\": %d, \"wait_seconds\": 30}; once it is approved, call azure_request again with exactly the same target, method, path, body and reveal (it runs once). Do not retry before.", f.ApprovalRequestID, f.ApprovalRequestID, f.ApprovalRequestID)
		case f.RuleAction == "review":
			f.NextStep = "this needs a person's approval, which this weir cannot take now: ask an operator"
		case f.Rule == "weir":
			f.NextStep = "weir refused this on its own (see the error); change the request as it says"
		default:
			f.NextStep = "do not retry it unchanged: a denied request cannot be approved. Change it so the policy allows it (list_targets summarises the policy), or tell the user you lack access"
		}
	case f.Code == "WeirUpstreamRefused":
		f.Rule = "weir"
		f.NextStep = "weir allowed the request but could not pass the answer on safely (see the error); narrow the request, or tell the user"
	default:
		f.Rule = "weir"
		f.NextStep = "weir refused this request before any policy rule, because of its form (see the error): fix the path, query or body as it says"
	}
	return f
}

// typicalAzure are the requests list_targets asks the policy about for an
// Azure target, classified as the proxy classifies them: made-up names in
// a made-up resource group, so rules about specific groups, vaults or
// names may decide otherwise; the request's own verdict is what counts.
var typicalAzure = map[string][]struct {
	what, method, path, body string
	reveal                   bool
}{
	config.KindAzureARM: {
		{"read (GET of a resource group in example-rg)", "GET", "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/example-rg?api-version=2022-09-01", "", false},
		{"write (PUT of a storage account in example-rg)", "PUT", "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/example-rg/providers/Microsoft.Storage/storageAccounts/example?api-version=2023-01-01", `{"location":"westeurope"}`, false},
		{"secret read (listKeys of a storage account)", "POST", "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/example-rg/providers/Microsoft.Storage/storageAccounts/example/listKeys?api-version=2023-01-01", "", false},
		{"role assignment (PUT of a roleAssignment)", "PUT", "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/example-rg/providers/Microsoft.Authorization/roleAssignments/00000000-0000-0000-0000-000000000001?api-version=2022-04-01", `{"properties":{"roleDefinitionId":"/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7","principalId":"00000000-0000-0000-0000-000000000002"}}`, false},
	},
	config.KindAzureKeyVault: {
		{"list secrets (names only)", "GET", "/secrets?api-version=7.4", "", false},
		{"read a secret (its value comes back masked)", "GET", "/secrets/example?api-version=7.4", "", false},
		{"read a secret with reveal (its value unmasked)", "GET", "/secrets/example?api-version=7.4", "", true},
		{"set a secret", "PUT", "/secrets/example?api-version=7.4", `{"value":"example"}`, false},
	},
}

// typicalAzureVerdicts decides the typical requests of t's kind with the
// real rules (Probe: nothing is audited, opened or forwarded). A request
// weir would refuse before any rule (an api-version the operator did not
// list) is left out.
func (s *Server) typicalAzureVerdicts(a *AgentSession, t *config.Target) []TypicalVerdict {
	var out []TypicalVerdict
	cfg := s.opts.Gateway.Config()
	for _, p := range typicalAzure[t.Kind] {
		path, query, _ := strings.Cut(p.path, "?")
		var body []byte
		if p.body != "" {
			body = []byte(p.body)
		}
		cl, err := azure.Classify(&azure.ClassifyOptions{Kind: t.Kind, Host: t.Azure.Hosts[0], APIVersions: cfg.Azure.APIVersions}, p.method, path, query, body)
		if err != nil {
			continue
		}
		if p.reveal {
			cl.MarkReveal()
		}
		d, ok := a.Control.Probe(t.Name, cl.Commands)
		if !ok {
			continue
		}
		out = append(out, TypicalVerdict{What: p.what, Verdict: verdictWords[d.Action], Rule: d.Rule, Message: d.Message})
	}
	return out
}
