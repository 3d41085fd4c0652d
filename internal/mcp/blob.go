package mcp

import (
	"bufio"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/weir-gw/weir/internal/config"
	"github.com/weir-gw/weir/internal/mask"
	"github.com/weir-gw/weir/internal/proxy/blob"
)

// The blob tools are clients of weir's Blob front end: each call is one
// Blob REST request handed to the front end in-process (blobDo), so what
// is allowed, held for approval, audited and masked is decided there,
// exactly as for `az storage` or an SDK. The tools only shape the request
// and the answer: caps, continuations, and refusals turned into something
// a model can act on.

const (
	// blobAPIVersion is the Blob REST version the tools speak.
	blobAPIVersion = "2021-12-02"

	defaultListResults = 100
	maxListResults     = 1000
	maxListBytes       = 8 << 20

	defaultReadBytes = 64 << 10
	maxReadBytes     = 256 << 10
	// sniffBytes of a blob decide whether it is text.
	sniffBytes = mask.SniffBytes

	maxWriteBytes = 4 << 20
	maxErrorBytes = 64 << 10
)

func init() {
	RegisterKindTools(config.KindAzureBlob, "blob_list", "blob_read", "blob_write", "approval_status")
	OfferOnlyWith(config.KindAzureBlob, "blob_list", "blob_read", "blob_write")
}

const blobListDescription = `List the blobs in a container of an Azure Blob Storage target through weir (or, without container, the target's containers). Every call is decided by weir's policy and recorded in the audit log; names that look like personal data or secrets come back masked.
Give target (an azure-blob target from list_targets) and container; narrow with prefix (e.g. "reports/2024/") and use delimiter "/" to see one "folder" level at a time (sub-folders come back as prefixes). At most max_results entries (default 100, at most 1000) are returned; when there are more, call blob_list again with the same arguments and marker set to the next_marker you got.
Which containers and prefixes you may list is the policy's: list_targets summarises it. A refused call names the rule; do not retry it unchanged.`

const blobReadDescription = `Read a blob from an Azure Blob Storage target through weir. Text (CSV, JSON, logs, code…) comes back as text with personal data and secrets masked by weir (masks such as j***@e******.com are expected; do not try to recover the values). Binary content (images, archives, parquet…) is not returned: you get its size and type.
Give target, container and blob (the name as blob_list shows it, e.g. "reports/2024/q1.csv"). One call returns at most max_bytes (default 65536, at most 262144) bytes of text starting at offset; offsets count bytes of the text as weir returns it (after masking), not of the stored blob. When the answer says truncated, call blob_read again with offset set to next_offset to continue.
Each call is decided by weir's policy and recorded in the audit log; a refused read names the rule and what to do.`

const blobWriteDescription = `Write a text blob to an Azure Blob Storage target through weir (a new block blob with exactly content; at most 4 MiB). Every write is decided by weir's policy: often agents may write only under certain containers or prefixes, writes elsewhere need a person's approval or are denied; list_targets summarises the rules.
By default an existing blob is not replaced (the call fails with BlobAlreadyExists); set overwrite to true to replace it. content_type defaults to text/plain; charset=utf-8 (use text/csv, application/json… as fits).
If the write needs approval, the error gives an approval request id: follow it with approval_status, then call blob_write again with exactly the same target, container, blob and content (the approval is for that write only). A denied write names the rule; do not retry it unchanged. Deleting blobs is not offered.`

type blobListIn struct {
	Target     string `json:"target" jsonschema:"the azure-blob target (see list_targets)"`
	Container  string `json:"container,omitempty" jsonschema:"the container to list; omit it to list the target's containers"`
	Prefix     string `json:"prefix,omitempty" jsonschema:"only names starting with this (e.g. reports/2024/)"`
	Delimiter  string `json:"delimiter,omitempty" jsonschema:"usually /: names below the next delimiter are grouped into prefixes (folders)"`
	Marker     string `json:"marker,omitempty" jsonschema:"next_marker from a previous truncated answer, to continue the listing"`
	MaxResults int    `json:"max_results,omitempty" jsonschema:"at most this many entries (default 100, at most 1000)"`
}

type blobReadIn struct {
	Target    string `json:"target" jsonschema:"the azure-blob target (see list_targets)"`
	Container string `json:"container" jsonschema:"the container"`
	Blob      string `json:"blob" jsonschema:"the blob's name within the container, as blob_list shows it"`
	Offset    int64  `json:"offset,omitempty" jsonschema:"where to start, in bytes of the (masked) text; next_offset of a truncated answer"`
	MaxBytes  int    `json:"max_bytes,omitempty" jsonschema:"at most this many bytes of text (default 65536, at most 262144)"`
}

type blobWriteIn struct {
	Target      string `json:"target" jsonschema:"the azure-blob target (see list_targets)"`
	Container   string `json:"container" jsonschema:"the container"`
	Blob        string `json:"blob" jsonschema:"the blob's name within the container (e.g. agent/notes.txt)"`
	Content     string `json:"content" jsonschema:"the blob's whole content, as text"`
	ContentType string `json:"content_type,omitempty" jsonschema:"the blob's content type (default text/plain; charset=utf-8)"`
	Overwrite   bool   `json:"overwrite,omitempty" jsonschema:"replace the blob if it exists (default false: an existing blob is kept and the call fails)"`
}

// BlobItem is one blob of a listing. Values weir masked arrive masked.
type BlobItem struct {
	Name         string `json:"name"`
	Size         *int64 `json:"size,omitempty"`
	ContentType  string `json:"content_type,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	BlobType     string `json:"blob_type,omitempty"`
}

// BlobListResult is blob_list's structured content.
type BlobListResult struct {
	Target     string     `json:"target"`
	Container  string     `json:"container,omitempty"`
	Prefix     string     `json:"prefix,omitempty"`
	Containers []string   `json:"containers,omitempty"`
	Blobs      []BlobItem `json:"blobs,omitempty"`
	// Prefixes are the "folders" grouped by the delimiter.
	Prefixes     []string `json:"prefixes,omitempty"`
	Truncated    bool     `json:"truncated"`
	NextMarker   string   `json:"next_marker,omitempty"`
	Continuation string   `json:"continuation,omitempty"`
}

// BlobReadResult is blob_read's structured content.
type BlobReadResult struct {
	Target      string `json:"target"`
	Container   string `json:"container"`
	Blob        string `json:"blob"`
	ContentType string `json:"content_type,omitempty"`
	// Binary is set when the content is not text; Text is then empty
	// and Description says what it is.
	Binary      bool   `json:"binary"`
	Description string `json:"description,omitempty"`
	// Size is the stored blob's size, when weir passed it on (it does
	// not for masked text, whose length masking changes).
	Size *int64 `json:"size,omitempty"`
	// Text is the masked text from Offset on.
	Text         string `json:"text,omitempty"`
	Offset       int64  `json:"offset"`
	Bytes        int    `json:"bytes"`
	Truncated    bool   `json:"truncated"`
	NextOffset   int64  `json:"next_offset,omitempty"`
	Continuation string `json:"continuation,omitempty"`
}

// BlobWriteResult is blob_write's structured content.
type BlobWriteResult struct {
	Target       string `json:"target"`
	Container    string `json:"container"`
	Blob         string `json:"blob"`
	Bytes        int    `json:"bytes"`
	ContentType  string `json:"content_type"`
	ContentMD5   string `json:"content_md5"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// BlobFailure is the structured content of a refused or failed blob call.
type BlobFailure struct {
	ToolFailure
	// Code is the Blob error code: weir's (WeirPolicyDenied,
	// WeirApprovalRequired, WeirRequestRefused, …) or Azure's
	// (BlobNotFound, BlobAlreadyExists, …).
	Code   string `json:"code,omitempty"`
	Status int    `json:"status,omitempty"`
}

func registerBlob(s *Server) {
	AddTool(s, &mcp.Tool{Name: "blob_list", Title: "List blobs through weir", Description: blobListDescription,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)}}, s.blobList)
	AddTool(s, &mcp.Tool{Name: "blob_read", Title: "Read a blob through weir", Description: blobReadDescription,
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)}}, s.blobRead)
	AddTool(s, &mcp.Tool{Name: "blob_write", Title: "Write a text blob through weir", Description: blobWriteDescription,
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), OpenWorldHint: ptr(false)}}, s.blobWrite)
}

// blobTarget checks that name is one of the token's azure-blob targets,
// for a clear answer; the front end refuses a target the token does not
// cover on its own.
func (s *Server) blobTarget(a *AgentSession, name string) (*config.Target, *BlobFailure) {
	t, ok := s.opts.Gateway.Config().Target(name)
	if !ok || !a.Claims.AllowsTarget(name) {
		return nil, &BlobFailure{ToolFailure: ToolFailure{Error: fmt.Sprintf("weir: %q is not one of your targets", name), NextStep: "call list_targets to see your targets"}}
	}
	if t.Kind != config.KindAzureBlob {
		return nil, &BlobFailure{ToolFailure: ToolFailure{Error: fmt.Sprintf("weir: target %q is a %s target; the blob tools act on azure-blob targets only", name, t.Kind), NextStep: "call list_targets to see which tools fit each target"}}
	}
	return t, nil
}

// checkNames catches argument mistakes a model makes (a path in the
// container argument, an empty name) with an answer that says how to
// fix them. Everything else about a name is the front end's to judge.
func checkNames(container, name string, needBlob bool) *BlobFailure {
	bad := func(msg string) *BlobFailure {
		return &BlobFailure{ToolFailure: ToolFailure{Error: "weir: " + msg, NextStep: "fix the arguments and call again"}}
	}
	switch {
	case strings.Contains(container, "/"):
		return bad(fmt.Sprintf("container %q holds a /: container is only the first path segment; put the rest in blob (or prefix)", container))
	case needBlob && container == "":
		return bad("container is empty")
	case needBlob && name == "":
		return bad("blob is empty: name the blob within the container")
	case strings.HasPrefix(name, "/"):
		return bad(fmt.Sprintf("blob %q starts with /: give the name within the container, without a leading /", name))
	}
	return nil
}

// blobURI is the origin-form request target for the front end: each
// segment escaped once (the front end decodes once and checks every
// segment).
func blobURI(target, container, name string, q url.Values) string {
	var b strings.Builder
	b.WriteString(blob.Prefix)
	b.WriteString(url.PathEscape(target))
	if container != "" {
		b.WriteString("/" + url.PathEscape(container))
	}
	if name != "" {
		for _, seg := range strings.Split(name, "/") {
			b.WriteString("/" + url.PathEscape(seg))
		}
	}
	if len(q) > 0 {
		b.WriteString("?" + q.Encode())
	}
	return b.String()
}

func blobHeaders() http.Header {
	return http.Header{"X-Ms-Version": {blobAPIVersion}}
}

func blobFail(f *BlobFailure) (*mcp.CallToolResult, any) {
	text := f.Error
	if f.NextStep != "" {
		text += "\nNext step: " + f.NextStep
	}
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: text}}}, f
}

// noteFailure records a failed blob call in the agent's MCP session.
func (a *AgentSession) noteFailure(tool string, data map[string]any, f *BlobFailure) {
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
	a.Note(tool, data)
}

func (s *Server) blobList(ctx context.Context, a *AgentSession, in blobListIn) (*mcp.CallToolResult, any) {
	note := map[string]any{"target": in.Target, "container": in.Container}
	if _, f := s.blobTarget(a, in.Target); f != nil {
		a.noteFailure("blob_list", note, f)
		return blobFail(f)
	}
	if f := checkNames(in.Container, "", false); f != nil {
		return blobFail(f)
	}
	n := in.MaxResults
	switch {
	case n <= 0:
		n = defaultListResults
	case n > maxListResults:
		n = maxListResults
	}
	q := url.Values{"comp": {"list"}, "maxresults": {strconv.Itoa(n)}}
	if in.Container != "" {
		q.Set("restype", "container")
	}
	for k, v := range map[string]string{"prefix": in.Prefix, "delimiter": in.Delimiter, "marker": in.Marker} {
		if v != "" {
			q.Set(k, v)
		}
	}
	resp, err := s.blobDo(ctx, a, http.MethodGet, blobURI(in.Target, in.Container, "", q), blobHeaders(), nil)
	if err != nil {
		return blobFail(s.blobTransportFailure(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		f := s.blobFailure(resp)
		a.noteFailure("blob_list", note, f)
		return blobFail(f)
	}
	body, err := readBody(resp, maxListBytes)
	if err != nil {
		f := &BlobFailure{ToolFailure: ToolFailure{Error: "weir: " + err.Error(), NextStep: "narrow the listing with prefix or a smaller max_results"}}
		a.noteFailure("blob_list", note, f)
		return blobFail(f)
	}
	var er enumerationResults
	if err := xml.Unmarshal(body, &er); err != nil {
		f := &BlobFailure{ToolFailure: ToolFailure{Error: "weir: the listing could not be read (" + err.Error() + ")", NextStep: "try again; if it keeps failing, tell the user"}}
		a.noteFailure("blob_list", note, f)
		return blobFail(f)
	}
	out := &BlobListResult{Target: in.Target, Container: strings.ToLower(in.Container), Prefix: in.Prefix, NextMarker: er.NextMarker}
	for _, c := range er.Containers {
		out.Containers = append(out.Containers, c.Name.String())
	}
	for _, b := range er.Blobs.Blobs {
		it := BlobItem{Name: b.Name.String(), ContentType: b.Props.ContentType, LastModified: b.Props.LastModified, BlobType: b.Props.BlobType}
		if v, err := strconv.ParseInt(b.Props.ContentLength, 10, 64); err == nil {
			it.Size = &v
		}
		out.Blobs = append(out.Blobs, it)
	}
	for _, p := range er.Blobs.Prefixes {
		out.Prefixes = append(out.Prefixes, p.Name.String())
	}
	if out.NextMarker != "" {
		out.Truncated = true
		out.Continuation = fmt.Sprintf("there are more entries: call blob_list again with the same arguments and marker %q", out.NextMarker)
	}
	a.Note("blob_list", map[string]any{"target": in.Target, "container": out.Container, "outcome": "ok",
		"entries": len(out.Containers) + len(out.Blobs) + len(out.Prefixes), "truncated": out.Truncated})
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: renderListing(out)}}}, out
}

// enumerationResults is the XML of List Containers and List Blobs.
type enumerationResults struct {
	Containers []struct {
		Name xmlName `xml:"Name"`
	} `xml:"Containers>Container"`
	Blobs struct {
		Blobs []struct {
			Name  xmlName `xml:"Name"`
			Props struct {
				LastModified  string `xml:"Last-Modified"`
				ContentLength string `xml:"Content-Length"`
				ContentType   string `xml:"Content-Type"`
				BlobType      string `xml:"BlobType"`
			} `xml:"Properties"`
		} `xml:"Blob"`
		Prefixes []struct {
			Name xmlName `xml:"Name"`
		} `xml:"BlobPrefix"`
	} `xml:"Blobs"`
	NextMarker string `xml:"NextMarker"`
}

// xmlName is a name in a listing; Azure percent-encodes names that XML
// cannot carry and says so with Encoded="true".
type xmlName struct {
	Encoded bool   `xml:"Encoded,attr"`
	Value   string `xml:",chardata"`
}

func (n xmlName) String() string {
	if n.Encoded {
		if v, err := url.PathUnescape(n.Value); err == nil {
			return v
		}
	}
	return n.Value
}

func renderListing(r *BlobListResult) string {
	var b strings.Builder
	switch {
	case r.Container == "":
		fmt.Fprintf(&b, "containers of %s", r.Target)
	default:
		fmt.Fprintf(&b, "%s/%s", r.Target, r.Container)
	}
	if r.Prefix != "" {
		fmt.Fprintf(&b, " with prefix %q", r.Prefix)
	}
	b.WriteString(":\n")
	for _, c := range r.Containers {
		fmt.Fprintf(&b, "  %s\n", c)
	}
	for _, p := range r.Prefixes {
		fmt.Fprintf(&b, "  %s (prefix)\n", p)
	}
	for _, it := range r.Blobs {
		size := "?"
		if it.Size != nil {
			size = strconv.FormatInt(*it.Size, 10)
		}
		fmt.Fprintf(&b, "  %s  %s bytes  %s  %s\n", it.Name, size, it.ContentType, it.LastModified)
	}
	if n := len(r.Containers) + len(r.Prefixes) + len(r.Blobs); n == 0 {
		b.WriteString("  (nothing)\n")
	}
	if r.Continuation != "" {
		b.WriteString(r.Continuation + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

func (s *Server) blobRead(ctx context.Context, a *AgentSession, in blobReadIn) (*mcp.CallToolResult, any) {
	note := map[string]any{"target": in.Target, "container": in.Container, "blob": in.Blob}
	if _, f := s.blobTarget(a, in.Target); f != nil {
		a.noteFailure("blob_read", note, f)
		return blobFail(f)
	}
	if f := checkNames(in.Container, in.Blob, true); f != nil {
		return blobFail(f)
	}
	if in.Offset < 0 {
		return blobFail(&BlobFailure{ToolFailure: ToolFailure{Error: "weir: offset must not be negative", NextStep: "use 0 or next_offset from a previous answer"}})
	}
	limit := in.MaxBytes
	switch {
	case limit <= 0:
		limit = defaultReadBytes
	case limit > maxReadBytes:
		limit = maxReadBytes
	}
	// The whole blob is requested, never a range: the front end masks it
	// as one stream, so no value is split between two reads and escapes
	// masking; offsets are positions in that masked stream.
	resp, err := s.blobDo(ctx, a, http.MethodGet, blobURI(in.Target, in.Container, in.Blob, nil), blobHeaders(), nil)
	if err != nil {
		return blobFail(s.blobTransportFailure(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		f := s.blobFailure(resp)
		a.noteFailure("blob_read", note, f)
		return blobFail(f)
	}
	out := &BlobReadResult{Target: in.Target, Container: strings.ToLower(in.Container), Blob: in.Blob, ContentType: resp.Header.Get("Content-Type"), Offset: in.Offset}
	if n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); err == nil {
		out.Size = &n
	}
	body, enc, err := decoded(resp)
	if err != nil {
		f := &BlobFailure{ToolFailure: ToolFailure{Error: "weir: " + err.Error(), NextStep: "this blob cannot be read as text through weir; tell the user"}}
		a.noteFailure("blob_read", note, f)
		return blobFail(f)
	}
	br := bufio.NewReaderSize(body, sniffBytes)
	head, err := br.Peek(sniffBytes)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		f := &BlobFailure{ToolFailure: ToolFailure{Error: "weir: the blob could not be read to the end of its first bytes", NextStep: "try again"}}
		a.noteFailure("blob_read", note, f)
		return blobFail(f)
	}
	if enc != "" || !mask.LooksText(head) {
		out.Binary = true
		out.Description = describeBinary(out, head, enc, resp.Header.Get("Content-MD5"))
		a.Note("blob_read", map[string]any{"target": in.Target, "container": out.Container, "blob": in.Blob, "outcome": "ok", "binary": true})
		return textResult(out.Description), out
	}
	// The Blob front end masked the text (it sniffs bodies whatever their
	// stored Content-Type says); this only windows it.
	win := &window{skip: in.Offset, max: limit}
	_, err = io.Copy(win, br)
	switch {
	case errors.Is(err, errWindowFull):
		out.Truncated = true
	case err != nil:
		f := &BlobFailure{ToolFailure: ToolFailure{Error: "weir: the blob's content was cut before its end (" + err.Error() + ")", NextStep: "try again; weir's log has the cause"}}
		a.noteFailure("blob_read", note, f)
		return blobFail(f)
	}
	text, lead := answerText(win.buf, out.Truncated)
	out.Offset += int64(lead)
	if out.Truncated {
		out.NextOffset = out.Offset + int64(len(text))
		out.Continuation = fmt.Sprintf("more text follows: call blob_read again with offset %d", out.NextOffset)
	}
	// The stored size is not the masked text's; offsets are in the latter.
	out.Text, out.Bytes, out.Size = string(text), len(text), nil
	data := map[string]any{"target": in.Target, "container": out.Container, "blob": in.Blob, "outcome": "ok", "bytes": out.Bytes, "truncated": out.Truncated}
	a.Note("blob_read", data)
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: renderRead(out, win.seen)}}}, out
}

// decoded returns the body as stored text: the front end re-encodes what
// it masked as the blob declares (gzip, deflate). Another encoding is
// returned in enc and the body is described, not decoded.
func decoded(resp *http.Response) (io.Reader, string, error) {
	switch enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return resp.Body, "", nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, "", errors.New("the blob's gzip content is corrupt")
		}
		return zr, "", nil
	case "deflate":
		zr, err := zlib.NewReader(resp.Body)
		if err != nil {
			return nil, "", errors.New("the blob's deflate content is corrupt")
		}
		return zr, "", nil
	default:
		return resp.Body, enc, nil
	}
}

func describeBinary(r *BlobReadResult, head []byte, enc, md5 string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s/%s is not text, so its content is not shown.", r.Target, r.Container, r.Blob)
	if r.Size != nil {
		fmt.Fprintf(&b, " Size: %d bytes.", *r.Size)
	}
	if r.ContentType != "" {
		fmt.Fprintf(&b, " Stored content type: %s.", r.ContentType)
	}
	if enc != "" {
		fmt.Fprintf(&b, " Content-Encoding: %s.", enc)
	} else if len(head) > 0 {
		fmt.Fprintf(&b, " Its first bytes look like %s.", http.DetectContentType(head))
	}
	if md5 != "" {
		fmt.Fprintf(&b, " Content-MD5: %s.", md5)
	}
	b.WriteString(" If it is text in another encoding than UTF-8, ask the user for a UTF-8 copy.")
	return b.String()
}

// errWindowFull stops the copy once the window has more than it shows.
var errWindowFull = errors.New("window full")

// window keeps max bytes of a stream after skipping skip bytes, and
// fails the write that brings one byte more (so the caller knows there
// is more).
type window struct {
	skip, seen int64
	max        int
	buf        []byte
}

func (w *window) Write(p []byte) (int, error) {
	n := len(p)
	w.seen += int64(n)
	if w.skip > 0 {
		k := int(min(w.skip, int64(len(p))))
		w.skip -= int64(k)
		p = p[k:]
	}
	room := w.max - len(w.buf)
	if len(p) > room {
		w.buf = append(w.buf, p[:room]...)
		return n, errWindowFull
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

// answerText is the part of the window an answer shows: from the first
// rune that starts in it (an offset the model chose may fall inside a
// UTF-8 sequence; lead says how many bytes were skipped), and, when
// truncated, up to cutText's end.
func answerText(buf []byte, truncated bool) ([]byte, int) {
	lead := 0
	for lead < utf8.UTFMax-1 && lead < len(buf) && !utf8.RuneStart(buf[lead]) {
		lead++
	}
	buf = buf[lead:]
	if truncated {
		buf = cutText(buf)
	}
	return buf, lead
}

// cutText ends a truncated window at a line end when there is one in its
// last quarter (so the next read starts at a line), and never inside a
// UTF-8 sequence.
func cutText(b []byte) []byte {
	if i := strings.LastIndexByte(string(b), '\n'); i >= 0 && i+1 >= len(b)*3/4 {
		return b[:i+1]
	}
	for k := 0; k < utf8.UTFMax && len(b) > 0; k++ {
		r, size := utf8.DecodeLastRune(b)
		if r != utf8.RuneError || size != 1 {
			break
		}
		b = b[:len(b)-1]
	}
	return b
}

func renderRead(r *BlobReadResult, seen int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s/%s", r.Target, r.Container, r.Blob)
	if r.ContentType != "" {
		fmt.Fprintf(&b, " (%s)", r.ContentType)
	}
	switch {
	case r.Truncated:
		fmt.Fprintf(&b, ", bytes %d-%d of the masked text, more follows:\n", r.Offset, r.Offset+int64(r.Bytes))
	case r.Offset > 0 && r.Offset >= seen:
		fmt.Fprintf(&b, ": offset %d is past the end of the text (%d bytes)\n", r.Offset, seen)
	case r.Offset > 0:
		fmt.Fprintf(&b, ", bytes %d-%d (the end) of the masked text:\n", r.Offset, r.Offset+int64(r.Bytes))
	default:
		fmt.Fprintf(&b, ", %d bytes of masked text, complete:\n", r.Bytes)
	}
	b.WriteString(r.Text)
	if r.Continuation != "" {
		if !strings.HasSuffix(r.Text, "\n") {
			b.WriteByte('\n')
		}
		b.WriteString("[" + r.Continuation + "]")
	}
	return b.String()
}

func (s *Server) blobWrite(ctx context.Context, a *AgentSession, in blobWriteIn) (*mcp.CallToolResult, any) {
	note := map[string]any{"target": in.Target, "container": in.Container, "blob": in.Blob, "bytes": len(in.Content)}
	if _, f := s.blobTarget(a, in.Target); f != nil {
		a.noteFailure("blob_write", note, f)
		return blobFail(f)
	}
	if f := checkNames(in.Container, in.Blob, true); f != nil {
		return blobFail(f)
	}
	if len(in.Content) > maxWriteBytes {
		return blobFail(&BlobFailure{ToolFailure: ToolFailure{Error: fmt.Sprintf("weir: content is %d bytes; blob_write takes at most %d", len(in.Content), maxWriteBytes), NextStep: "write smaller blobs (split the content)"}})
	}
	ct := strings.TrimSpace(in.ContentType)
	if ct == "" {
		ct = "text/plain; charset=utf-8"
	}
	body := []byte(in.Content)
	sum := md5.Sum(body)
	md5b64 := base64.StdEncoding.EncodeToString(sum[:])
	hdr := blobHeaders()
	hdr.Set("x-ms-blob-type", "BlockBlob")
	hdr.Set("Content-Type", ct)
	hdr.Set("x-ms-blob-content-type", ct)
	// Content-MD5 binds an approval of this write to its content, not
	// only its length (the Blob front end binds the checksum a client
	// sends), and the account checks what it stored against it.
	hdr.Set("Content-MD5", md5b64)
	if !in.Overwrite {
		hdr.Set("If-None-Match", "*")
	}
	resp, err := s.blobDo(ctx, a, http.MethodPut, blobURI(in.Target, in.Container, in.Blob, nil), hdr, body)
	if err != nil {
		return blobFail(s.blobTransportFailure(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		f := s.blobFailure(resp)
		if f.Code == "BlobAlreadyExists" || f.Code == "ConditionNotMet" {
			f.NextStep = "the blob exists and was kept: choose another name, or call blob_write again with overwrite true if replacing it is what the user wants"
		}
		a.noteFailure("blob_write", note, f)
		return blobFail(f)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes))
	if got := resp.Header.Get("Content-MD5"); got != "" && got != md5b64 {
		// The account computed the checksum of what it stored.
		f := &BlobFailure{ToolFailure: ToolFailure{Error: fmt.Sprintf("weir: the storage account stored content with MD5 %s, not the %s of what was sent", got, md5b64), NextStep: "write it again, and tell the user if it happens again"}}
		a.noteFailure("blob_write", note, f)
		return blobFail(f)
	}
	out := &BlobWriteResult{Target: in.Target, Container: strings.ToLower(in.Container), Blob: in.Blob, Bytes: len(body), ContentType: ct,
		ContentMD5: md5b64, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
	note["container"], note["outcome"] = out.Container, "ok"
	a.Note("blob_write", note)
	return textResult(fmt.Sprintf("wrote %d bytes to %s/%s/%s (%s)", out.Bytes, out.Target, out.Container, out.Blob, ct)), out
}

// readBody reads a response body of at most limit bytes.
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, errors.New("the answer was cut before its end")
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("the answer is larger than %d bytes", limit)
	}
	return b, nil
}

func (s *Server) blobTransportFailure(err error) *BlobFailure {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &BlobFailure{ToolFailure: ToolFailure{Error: "weir: the call was cancelled before it finished", NextStep: "call it again if needed"}}
	}
	s.log.Warn("mcp: blob request failed", "err", err)
	return &BlobFailure{ToolFailure: ToolFailure{Error: "weir: the request could not be sent to weir's Blob front end", NextStep: "try again; if it keeps failing, ask the weir operator (weir's log has the cause)"}}
}

// storageError is the Blob error body: Azure's, or weir's with its own
// codes.
type storageError struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// blobFailure turns the front end's error answer into a failure the model
// can act on: weir's refusals name the rule (and an approval request);
// Azure's own errors say what Azure said.
func (s *Server) blobFailure(resp *http.Response) *BlobFailure {
	b, _ := readBody(resp, maxErrorBytes)
	return explainBlobError(resp.StatusCode, resp.Header.Get("x-ms-error-code"), b, s.opts.Gateway.Config().Policy.Rules)
}

// explainBlobError reads an error answer (status, x-ms-error-code, XML
// body) of the Blob front end.
func explainBlobError(status int, code string, body []byte, rules []config.Rule) *BlobFailure {
	f := &BlobFailure{Status: status, Code: code}
	var se storageError
	if len(body) > 0 && xml.Unmarshal(body, &se) == nil && se.Code != "" {
		f.Code = se.Code
	}
	// Azure appends RequestId and Time lines; the first line is the message.
	msg, _, _ := strings.Cut(strings.TrimSpace(se.Message), "\n")
	if msg == "" {
		msg = http.StatusText(status)
	}
	f.Error = msg
	ruleOf := func() {
		if m := ruleRe.FindStringSubmatch(msg); m != nil {
			f.Rule = strings.TrimSuffix(m[1], " (approved)")
		} else if strings.Contains(msg, "default deny") {
			f.Rule = "default-deny"
		} else {
			f.Rule = "weir"
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
	}
	switch f.Code {
	case blob.CodeDenied:
		ruleOf()
		f.NextStep = "do not retry it unchanged: a denied request cannot be approved. Use a container or prefix the policy allows (list_targets summarises the policy), or tell the user you lack access"
	case blob.CodeReview:
		ruleOf()
		switch {
		case f.ApprovalRequestID != 0 && strings.Contains(msg, "was denied"):
			f.NextStep = "a person denied it: do not retry; change the approach or ask the user"
		case f.ApprovalRequestID != 0:
			f.NextStep = fmt.Sprintf("a person must approve request %d (weir approvals approve %d). Check it with approval_status {\"id\": %d, \"wait_seconds\": 30}; once it is approved, call the same tool again with exactly the same arguments (it runs once). Do not retry before.", f.ApprovalRequestID, f.ApprovalRequestID, f.ApprovalRequestID)
		default:
			f.NextStep = "this needs a person's approval, which this weir cannot take: ask an operator"
		}
	case blob.CodeRefused:
		f.Rule = "weir"
		f.NextStep = "weir refused this request on its own (see the error); change it as the error says"
	case blob.CodeAuth, blob.CodeNoAuth:
		f.Error = "weir: " + strings.TrimPrefix(msg, "weir: ")
		f.NextStep = "your weir token was refused (expired or revoked?): the user must issue a new one and restart the MCP connection"
	case "UnsupportedContentEncoding":
		f.NextStep = "this blob cannot be read as text through weir; tell the user"
	default:
		if f.Code != "" {
			f.Error = "Azure Storage: " + f.Code + ": " + msg
		} else {
			f.Error = fmt.Sprintf("Azure Storage answered %d: %s", status, msg)
		}
		switch f.Code {
		case "ContainerNotFound", "BlobNotFound", "ResourceNotFound":
			f.NextStep = "check the name with blob_list (names are case-sensitive; container names are lower case)"
		case "ServerBusy", "OperationTimedOut", "InternalError":
			f.NextStep = "try again later"
		default:
			f.NextStep = "fix the request as the error says"
		}
	}
	return f
}
