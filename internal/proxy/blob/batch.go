package blob

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/identity"
)

// Azure's own bounds on a Blob batch.
const (
	maxBatchBytes = 4 << 20
	maxBatchParts = 256
)

// batchOps are the operations Azure allows inside a batch.
var batchOps = map[string]bool{"DeleteBlob": true, "SetBlobTier": true}

// batch is a Blob batch after weir parsed and re-serialized it.
type batch struct {
	cmds     []command.Command
	body     []byte
	boundary string
}

// subRequest is one parsed part of a batch.
type subRequest struct {
	id     string
	method string
	path   Path
	query  url.Values
	header http.Header
	// authorization as sent, and the raw path and query it signed
	authz, rawPath, rawQuery string
}

// parseBatch reads a Blob batch body (multipart/mixed of application/http
// parts) into its sub-requests. Anything out of the ordinary (a part
// that is not one plain HTTP request, a body in a sub-request, a missing
// Content-ID) fails the whole batch: weir decides on every part or on
// none.
func parseBatch(contentType string, body []byte) ([]subRequest, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/mixed" {
		return nil, errors.New("a batch must be multipart/mixed")
	}
	boundary := params["boundary"]
	if boundary == "" || len(boundary) > 70 || strings.ContainsAny(boundary, "\r\n") {
		return nil, errors.New("the batch boundary is missing or invalid")
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var subs []subRequest
	ids := map[string]bool{}
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("the batch body is not valid multipart: %v", err)
		}
		if len(subs) == maxBatchParts {
			return nil, fmt.Errorf("a batch may hold at most %d sub-requests", maxBatchParts)
		}
		if ct := part.Header.Get("Content-Type"); !strings.EqualFold(ct, "application/http") {
			return nil, fmt.Errorf("batch part %d has Content-Type %s; want application/http", len(subs), quote(ct))
		}
		if te := part.Header.Get("Content-Transfer-Encoding"); te != "" && !strings.EqualFold(te, "binary") {
			return nil, fmt.Errorf("batch part %d has Content-Transfer-Encoding %s; want binary", len(subs), quote(te))
		}
		id := part.Header.Get("Content-ID")
		if n, err := strconv.Atoi(id); err != nil || n < 0 || ids[id] {
			return nil, fmt.Errorf("batch part %d needs a unique numeric Content-ID", len(subs))
		}
		ids[id] = true
		raw, err := io.ReadAll(part)
		if err != nil {
			return nil, fmt.Errorf("batch part %d: %v", len(subs), err)
		}
		br := bufio.NewReader(bytes.NewReader(raw))
		req, err := http.ReadRequest(br)
		if err != nil {
			return nil, fmt.Errorf("batch part %d is not an HTTP request: %v", len(subs), err)
		}
		if req.ContentLength > 0 || len(req.TransferEncoding) > 0 {
			return nil, fmt.Errorf("batch part %d has a body; Delete Blob and Set Blob Tier have none", len(subs))
		}
		if rest, _ := io.ReadAll(br); len(bytes.TrimSpace(rest)) > 0 {
			return nil, fmt.Errorf("batch part %d has bytes after its headers", len(subs))
		}
		rawPath, rawQuery, _ := strings.Cut(req.RequestURI, "?")
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return nil, fmt.Errorf("batch part %d has an invalid query", len(subs))
		}
		subs = append(subs, subRequest{id: id, method: req.Method, query: q, header: req.Header,
			authz: req.Header.Get("Authorization"), rawPath: rawPath, rawQuery: rawQuery})
	}
	if len(subs) == 0 {
		return nil, errors.New("the batch holds no sub-requests")
	}
	return subs, nil
}

// prepareBatch checks every sub-request of a batch as if it came alone
// (same token, valid signature, canonical path, known operation), and
// re-serializes the batch for upstream, each part re-signed with the real
// key. The commands of all parts are decided together: one refused part
// refuses the batch.
func (h *Handler) prepareBatch(r *http.Request, up *upstream, e *entry, p Path, q url.Values) (*batch, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBatchBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the batch: %v", err)
	}
	if len(body) > maxBatchBytes {
		return nil, fmt.Errorf("a batch body may be at most %d bytes", maxBatchBytes)
	}
	subs, err := parseBatch(r.Header.Get("Content-Type"), body)
	if err != nil {
		return nil, err
	}
	outerAuth := r.Header.Get("Authorization")
	prefix := Prefix + up.target.Name
	boundary := "batch_" + identity.RandomID(16)
	var out bytes.Buffer
	mw := multipart.NewWriter(&out)
	if err := mw.SetBoundary(boundary); err != nil {
		return nil, err
	}
	b := &batch{boundary: boundary}
	for i, s := range subs {
		where := fmt.Sprintf("batch part %d: ", i)
		if !strings.HasPrefix(s.rawPath, prefix+"/") {
			return nil, fmt.Errorf("%sits path must be under %s/ like the batch itself", where, prefix)
		}
		if hasSAS(s.query) {
			return nil, fmt.Errorf("%sweir does not accept a shared access signature from an agent", where)
		}
		scheme, cred, _ := strings.Cut(s.authz, " ")
		oscheme, ocred, _ := strings.Cut(outerAuth, " ")
		switch {
		case scheme == "SharedKey" && oscheme == "SharedKey":
			acct, sig, _ := strings.Cut(cred, ":")
			oacct, _, _ := strings.Cut(ocred, ":")
			if acct != oacct {
				return nil, fmt.Errorf("%sit is signed for another account than the batch", where)
			}
			t, err := http.ParseTime(s.header.Get("x-ms-date"))
			if err != nil || h.now().Sub(t).Abs() > maxClockSkew {
				return nil, fmt.Errorf("%sx-ms-date is missing or stale", where)
			}
			if !verifySharedKey(e.key, sig, s.method, s.header, acct, s.rawPath, s.rawQuery) {
				return nil, fmt.Errorf("%sthe SharedKey signature does not match", where)
			}
		case scheme == "Bearer" && oscheme == "Bearer" && cred == ocred:
		default:
			return nil, fmt.Errorf("%sit must be authorized like the batch itself (same weir token)", where)
		}
		sp, err := CanonicalPath(s.rawPath[len(prefix):])
		if err != nil {
			return nil, fmt.Errorf("%s%v", where, err)
		}
		if p.Container != "" && sp.Container != p.Container {
			return nil, fmt.Errorf("%sa container batch may only address blobs of container %s", where, quote(p.Container))
		}
		c, err := classify(s.method, sp, s.query, s.header, nil)
		if err != nil {
			return nil, fmt.Errorf("%s%v", where, err)
		}
		if !batchOps[c.Operation] {
			return nil, fmt.Errorf("%s%s cannot be part of a batch (only Delete Blob and Set Blob Tier)", where, c.Operation)
		}
		c.Attrs["batch"] = "true"
		b.cmds = append(b.cmds, c)

		hdr, bad := upstreamHeaders(s.header)
		if bad != "" {
			return nil, fmt.Errorf("%s%s", where, bad)
		}
		hdr.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
		hdr.Set("Content-Length", "0")
		sub := &http.Request{Method: s.method, URL: up.upstreamURL(sp, s.query), Header: hdr}
		signSharedKey(sub, up.account, up.key)
		pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/http"}, "Content-Transfer-Encoding": {"binary"}, "Content-ID": {s.id}})
		if err != nil {
			return nil, err
		}
		target := sub.URL.EscapedPath()
		if sub.URL.RawQuery != "" {
			target += "?" + sub.URL.RawQuery
		}
		fmt.Fprintf(pw, "%s %s HTTP/1.1\r\n", s.method, target)
		if err := hdr.Write(pw); err != nil {
			return nil, err
		}
		io.WriteString(pw, "\r\n")
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	b.body = out.Bytes()
	return b, nil
}
