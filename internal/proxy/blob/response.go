package blob

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/weir-gw/weir/internal/gateway"
	"github.com/weir-gw/weir/internal/mask"
)

// hopHeaders never cross weir.
var hopHeaders = map[string]bool{"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Set-Cookie": true}

// integrityHeaders describe the exact bytes of the body; they go when
// masking may change them.
// Content-Range stays: it describes the blob's bytes the agent asked for
// (SDKs read the blob's size from it), not the masked body.
var integrityHeaders = []string{"Content-Length", "Content-MD5", "X-Ms-Content-Crc64"}

// hashHeaders carry a hash of a blob's stored (unmasked) bytes.
var hashHeaders = []string{"Content-MD5", "X-Ms-Blob-Content-Md5", "X-Ms-Content-Crc64"}

// textLike reports whether a response with this Content-Type can carry
// values to mask. No type at all counts as text: weir masks what it
// cannot tell apart.
func textLike(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true
	}
	switch {
	case strings.HasPrefix(mt, "text/"), strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	switch mt {
	case "application/json", "application/xml", "application/csv", "application/x-ndjson", "application/jsonl",
		"application/yaml", "application/x-yaml", "application/javascript", "application/x-www-form-urlencoded",
		"application/sql", "multipart/mixed", "application/x-sh", "application/toml":
		return true
	}
	return false
}

// respond copies the upstream response to the agent, masking what can
// carry text, and returns the result summary for the audit log. cut means
// the body could not be finished (a decoding limit, a broken upstream
// stream): the caller records the result and then cuts the connection, so
// the agent sees a failure rather than a short body that looks complete.
func (h *Handler) respond(w http.ResponseWriter, r *http.Request, resp *http.Response, listing bool) (res gateway.Result, cut bool) {
	if resp.StatusCode >= 400 {
		res.Error = strconv.Itoa(resp.StatusCode) + " " + resp.Header.Get("x-ms-error-code")
	}
	out := w.Header()
	m := h.gw.Masker()
	for k, vs := range resp.Header {
		if hopHeaders[k] {
			continue
		}
		if m != nil && (strings.HasPrefix(k, "X-Ms-Meta-") || strings.HasPrefix(k, "X-Ms-Tag")) {
			masked := make([]string, len(vs))
			for i, v := range vs {
				mv, c := m.MaskString(v)
				masked[i] = mv
				res.Masked.Add(c)
			}
			out[k] = masked
			continue
		}
		out[k] = vs
	}
	bodyless := r.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	text := m != nil && textLike(resp.Header.Get("Content-Type"))
	if m != nil && !text && !bodyless {
		// The stored Content-Type is the uploader's word: a CSV stored as
		// application/octet-stream is text all the same.
		resp.Body, text = sniffText(resp.Body, resp.Header.Get("Content-Encoding"))
	}
	if text || (m != nil && bodyless) {
		// A hash of the unmasked bytes (on GET and HEAD alike; a HEAD
		// cannot be sniffed) is an oracle: with the masked text it finds a
		// low-entropy value by trying candidates.
		for _, k := range hashHeaders {
			out.Del(k)
		}
	}
	mustMask := text && !bodyless
	if !mustMask {
		w.WriteHeader(resp.StatusCode)
		if !bodyless {
			bp := bufPool.Get().(*[]byte)
			n, _ := io.CopyBuffer(w, resp.Body, *bp)
			bufPool.Put(bp)
			res.Columns, res.Seen = summary(resp.StatusCode, n, false)
		}
		return res, false
	}
	if rng := resp.Header.Get("Content-Range"); rng != "" && !wholeRange(rng) {
		// A value split at a range's edges is masked in neither part, so
		// ranges read one by one would give it away (and part of a
		// compressed stream cannot be decoded at all). A policy cannot
		// refuse ranges instead: az sends one on every download.
		return h.refuseRange(w, res), false
	}
	if cs := charset(resp.Header.Get("Content-Type")); !byteWise(cs) {
		return h.failCharset(w, res, "the blob's charset is "+quote(cs)), false
	}
	enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding")))
	var dec io.Reader
	var reenc io.WriteCloser
	cr := &countReader{r: resp.Body}
	switch enc {
	case "", "identity":
		dec = cr
	case "gzip", "x-gzip", "deflate":
		var err error
		if enc == "deflate" {
			dec, err = zlib.NewReader(cr)
		} else {
			dec, err = gzip.NewReader(cr)
		}
		if err != nil {
			return h.failClosed(w, res, "the "+enc+" body from the storage account is corrupt, so weir cannot mask it"), false
		}
		dec = &boundReader{r: dec, in: cr, max: h.maxDec, ratio: h.maxRat}
	default:
		return h.failClosed(w, res, fmt.Sprintf("the blob has Content-Encoding %s, which weir cannot decode to mask it; store it as identity, gzip or deflate", quote(enc))), false
	}
	// The detectors read ASCII-compatible bytes; UTF-16 or UTF-32 text
	// (Excel's "Unicode Text" export, with or without a BOM) would show
	// them a NUL between characters and pass unscanned.
	head := make([]byte, 512)
	n, herr := io.ReadFull(dec, head)
	if wideText(head[:n]) {
		return h.failCharset(w, res, "the blob is UTF-16 or UTF-32 text"), false
	}
	dec = &headReader{head: head[:n], err: herr, r: dec}
	for _, k := range integrityHeaders {
		out.Del(k)
	}
	w.WriteHeader(resp.StatusCode)
	var sink io.Writer = w
	switch enc {
	case "gzip", "x-gzip":
		reenc = gzip.NewWriter(w)
		sink = reenc
	case "deflate":
		reenc = zlib.NewWriter(w)
		sink = reenc
	}
	cw := &countWriter{w: sink}
	var strip *stripHashes
	var into io.Writer = cw
	if listing {
		strip = &stripHashes{w: cw}
		into = strip
	}
	st := m.NewStream(into)
	bp := bufPool.Get().(*[]byte)
	_, err := io.CopyBuffer(st, dec, *bp)
	bufPool.Put(bp)
	cerr := st.Close()
	if strip != nil && cerr == nil {
		cerr = strip.Close()
	}
	res.Masked.Add(st.Counts())
	if err == nil {
		err = cerr
	}
	if reenc != nil && err == nil {
		err = reenc.Close()
	}
	res.Columns, res.Seen = summary(resp.StatusCode, cw.n, true)
	if err != nil {
		var be *boundError
		if errors.As(err, &be) {
			res.Error = be.Error()
		} else if res.Error == "" {
			res.Error = "response not completed"
		}
		h.log.Warn("blob: response cut", "err", err)
		return res, true
	}
	return res, false
}

// sniffText reads the first bytes of a body whose Content-Type says it is
// not text (decoding a gzip or deflate prefix) and reports whether they
// are text after all; the returned body still yields every byte. Bodies in
// other encodings stay binary, as before.
func sniffText(body io.ReadCloser, encoding string) (io.ReadCloser, bool) {
	enc := strings.ToLower(strings.TrimSpace(encoding))
	size := mask.SniffBytes
	if enc != "" && enc != "identity" {
		size = 64 << 10 // compressed bytes enough for SniffBytes of text
	}
	br := bufio.NewReaderSize(body, size)
	head, _ := br.Peek(size)
	rc := struct {
		io.Reader
		io.Closer
	}{br, body}
	switch enc {
	case "", "identity":
		return rc, mask.LooksText(head)
	case "gzip", "x-gzip", "deflate":
		var zr io.Reader
		var err error
		if enc == "deflate" {
			zr, err = zlib.NewReader(bytes.NewReader(head))
		} else {
			zr, err = gzip.NewReader(bytes.NewReader(head))
		}
		if err != nil {
			return rc, false
		}
		plain := make([]byte, mask.SniffBytes)
		n, _ := io.ReadFull(zr, plain)
		return rc, n > 0 && mask.LooksText(plain[:n])
	}
	return rc, false
}

func summary(status int, n int64, masked bool) ([]string, [][]*string) {
	s, b, m := strconv.Itoa(status), strconv.FormatInt(n, 10), strconv.FormatBool(masked)
	return []string{"status", "bytes", "masked"}, [][]*string{{&s, &b, &m}}
}

// failClosed answers 406, not 502: SDKs retry a 502, and retrying cannot help.
func (h *Handler) failClosed(w http.ResponseWriter, res gateway.Result, msg string) gateway.Result {
	res.Error = "refused response: " + msg
	writeError(w, http.StatusNotAcceptable, "UnsupportedContentEncoding", "weir: "+msg)
	return res
}

// stripHashes empties the <Content-MD5> elements of a listing: the hash of
// each blob's unmasked bytes is an oracle for what masking hid.
type stripHashes struct {
	w   io.Writer
	buf []byte
}

var (
	md5Open  = []byte("<Content-MD5>")
	md5Close = []byte("</Content-MD5>")
	md5Empty = []byte("<Content-MD5 />")
)

func (s *stripHashes) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	for {
		i := bytes.Index(s.buf, md5Open)
		if i < 0 {
			// Hold back what could be the start of an opening tag.
			keep := 0
			for k := min(len(md5Open)-1, len(s.buf)); k > 0; k-- {
				if bytes.HasPrefix(md5Open, s.buf[len(s.buf)-k:]) {
					keep = k
					break
				}
			}
			if err := s.emit(len(s.buf) - keep); err != nil {
				return 0, err
			}
			return len(p), nil
		}
		j := bytes.Index(s.buf[i:], md5Close)
		if j < 0 {
			if len(s.buf)-i > 1024 {
				return 0, errors.New("a listing's Content-MD5 element does not end")
			}
			if err := s.emit(i); err != nil {
				return 0, err
			}
			return len(p), nil
		}
		if _, err := s.w.Write(s.buf[:i]); err != nil {
			return 0, err
		}
		if _, err := s.w.Write(md5Empty); err != nil {
			return 0, err
		}
		s.buf = s.buf[i+j+len(md5Close):]
	}
}

// emit writes the first n buffered bytes and keeps the rest.
func (s *stripHashes) emit(n int) error {
	if n > 0 {
		if _, err := s.w.Write(s.buf[:n]); err != nil {
			return err
		}
	}
	s.buf = append(s.buf[:0:0], s.buf[n:]...)
	return nil
}

// Close writes what was held back.
func (s *stripHashes) Close() error { return s.emit(len(s.buf)) }

// headReader replays the bytes read to sniff the body, then the rest.
// It is a plain Reader so the copy keeps its own large buffer.
type headReader struct {
	head []byte
	err  error // of reading the head: io.EOF/ErrUnexpectedEOF end the body
	r    io.Reader
}

func (h *headReader) Read(p []byte) (int, error) {
	if len(h.head) > 0 {
		n := copy(p, h.head)
		h.head = h.head[n:]
		return n, nil
	}
	switch {
	case h.err == io.EOF || h.err == io.ErrUnexpectedEOF:
		return 0, io.EOF
	case h.err != nil:
		return 0, h.err
	}
	return h.r.Read(p)
}

// charset is the charset parameter of a Content-Type, lower-cased.
func charset(ct string) string {
	_, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(params["charset"]))
}

// byteWise reports whether text in charset cs keeps ASCII characters as
// single ASCII bytes, which is what the masker's detectors read.
func byteWise(cs string) bool {
	switch cs {
	case "", "utf-8", "utf8", "us-ascii", "ascii", "latin1", "cp1252":
		return true
	}
	return strings.HasPrefix(cs, "iso-8859-") || strings.HasPrefix(cs, "windows-125")
}

// wideText reports a UTF-16/UTF-32 byte-order mark, or the NULs that
// such text without one has between its ASCII characters.
func wideText(b []byte) bool {
	if bytes.HasPrefix(b, []byte{0xff, 0xfe}) || bytes.HasPrefix(b, []byte{0xfe, 0xff}) || bytes.HasPrefix(b, []byte{0, 0, 0xfe, 0xff}) {
		return true
	}
	return len(b) >= 4 && bytes.Count(b, []byte{0}) >= len(b)/4
}

func (h *Handler) failCharset(w http.ResponseWriter, res gateway.Result, what string) gateway.Result {
	msg := what + ", which weir cannot mask (it reads UTF-8 and other ASCII-compatible text); store it as UTF-8"
	res.Error = "refused response: " + msg
	writeError(w, http.StatusNotAcceptable, "UnsupportedCharset", "weir: "+msg)
	return res
}

// refuseRange answers a request for part of a text blob.
func (h *Handler) refuseRange(w http.ResponseWriter, res gateway.Result) gateway.Result {
	msg := "weir masks text blobs whole: a part of one cannot be masked reliably (a value split at the range's edges would leave unmasked); download it whole (no Range, or one covering the whole blob)"
	res.Error = "refused response: " + msg
	writeError(w, http.StatusRequestedRangeNotSatisfiable, "WeirRangeRefused", "weir: "+msg)
	return res
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// boundError is a decompression bomb or an over-long body.
type boundError struct{ msg string }

func (e *boundError) Error() string { return e.msg }

// boundReader caps a decompressed stream's size and its ratio to the
// compressed bytes read (after the first MiB, which any ratio may reach).
type boundReader struct {
	r     io.Reader
	in    *countReader
	n     int64
	max   int64
	ratio int64
}

func (b *boundReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > b.max {
		return n, &boundError{fmt.Sprintf("decompressed body exceeds %d bytes", b.max)}
	}
	if b.n > 1<<20 && b.n > b.ratio*max(b.in.n, 1) {
		return n, &boundError{fmt.Sprintf("decompression ratio exceeds %d:1", b.ratio)}
	}
	return n, err
}

// wholeRange reports whether a Content-Range covers the whole blob
// ("bytes 0-99/100"), which az asks for on every download.
func wholeRange(cr string) bool {
	rng, total, ok := strings.Cut(strings.TrimPrefix(cr, "bytes "), "/")
	if !ok {
		return false
	}
	first, last, ok := strings.Cut(rng, "-")
	n, err1 := strconv.ParseInt(total, 10, 64)
	l, err2 := strconv.ParseInt(last, 10, 64)
	return ok && err1 == nil && err2 == nil && first == "0" && l == n-1
}
