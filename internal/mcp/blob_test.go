package mcp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/weir-gw/weir/internal/config"
)

func TestBlobURI(t *testing.T) {
	for _, tc := range []struct {
		target, container, name string
		q                       map[string][]string
		want                    string
	}{
		{"lake", "", "", nil, "/blob/lake"},
		{"lake", "", "", map[string][]string{"comp": {"list"}}, "/blob/lake?comp=list"},
		{"lake", "reports", "q1/a b.csv", nil, "/blob/lake/reports/q1/a%20b.csv"},
		// A name is escaped segment by segment: ? # % and ; cannot end the
		// path or be read as a second escaping.
		{"lake", "reports", "x?y#z%2F;w", nil, "/blob/lake/reports/x%3Fy%23z%252F%3Bw"},
		{"lake", "reports", "", map[string][]string{"restype": {"container"}, "prefix": {"a&b=c"}}, "/blob/lake/reports?prefix=a%26b%3Dc&restype=container"},
	} {
		if got := blobURI(tc.target, tc.container, tc.name, tc.q); got != tc.want {
			t.Errorf("blobURI(%q, %q, %q) = %q, want %q", tc.target, tc.container, tc.name, got, tc.want)
		}
	}
}

func TestCheckNames(t *testing.T) {
	for _, tc := range []struct {
		container, name string
		needBlob        bool
		bad             string
	}{
		{"reports", "a.csv", true, ""},
		{"", "", false, ""},
		{"reports/q1", "", false, "first path segment"},
		{"", "a", true, "container is empty"},
		{"reports", "", true, "blob is empty"},
		{"reports", "/a.csv", true, "leading /"},
	} {
		f := checkNames(tc.container, tc.name, tc.needBlob)
		if (f == nil) != (tc.bad == "") || f != nil && !strings.Contains(f.Error, tc.bad) {
			t.Errorf("checkNames(%q, %q): %+v, want %q", tc.container, tc.name, f, tc.bad)
		}
	}
}

func TestCutText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"line one\nline two\nli", "line one\nline two\n"},
		// A newline too early would waste most of the answer.
		{"a\n" + strings.Repeat("x", 40), "a\n" + strings.Repeat("x", 40)},
		{"abc\xe2\x9c", "abc"},
		{"abc\xe2", "abc"},
		{"abc✓", "abc✓"},
	} {
		if got := string(cutText([]byte(tc.in))); got != tc.want {
			t.Errorf("cutText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWindow(t *testing.T) {
	text := []byte("0123456789abcdefghij")
	for _, tc := range []struct {
		skip  int64
		max   int
		want  string
		full  bool
		piece int
	}{
		{0, 100, "0123456789abcdefghij", false, 3},
		{0, 5, "01234", true, 3},
		{5, 5, "56789", true, 1},
		{15, 10, "fghij", false, 7},
		{25, 10, "", false, 4},
		{0, 20, "0123456789abcdefghij", false, 20},
	} {
		w := &window{skip: tc.skip, max: tc.max}
		full := false
		for p := text; len(p) > 0; {
			k := min(tc.piece, len(p))
			if _, err := w.Write(p[:k]); errors.Is(err, errWindowFull) {
				full = true
				break
			}
			p = p[k:]
		}
		if string(w.buf) != tc.want || full != tc.full {
			t.Errorf("skip %d max %d: %q full=%v, want %q full=%v", tc.skip, tc.max, w.buf, full, tc.want, tc.full)
		}
	}
}

// Whatever the pieces, the window holds exactly text[skip:skip+max] and
// says whether there was more; the answer shown is valid UTF-8 (for
// UTF-8 text), part of the window from its first rune on, and all of it
// unless truncated.
func FuzzWindow(f *testing.F) {
	f.Add([]byte("id,email\n1,ada@example.com\n2,✓✓✓\n"), int64(3), 7, 2)
	f.Add([]byte("\xe2\x9c\x93\xe2\x9c\x93"), int64(0), 4, 1)
	f.Add([]byte(""), int64(0), 1, 1)
	f.Fuzz(func(t *testing.T, text []byte, skip int64, maxBytes, piece int) {
		if skip < 0 || maxBytes <= 0 || maxBytes > 1<<16 || piece <= 0 {
			return
		}
		w := &window{skip: skip, max: maxBytes}
		full := false
		for p := text; len(p) > 0; {
			k := min(piece, len(p))
			if _, err := w.Write(p[:k]); errors.Is(err, errWindowFull) {
				full = true
				break
			}
			p = p[k:]
		}
		start := min(skip, int64(len(text)))
		want := text[start:min(start+int64(maxBytes), int64(len(text)))]
		if !bytes.Equal(w.buf, want) || full != (int64(len(text))-start > int64(maxBytes)) {
			t.Fatalf("window %q full=%v, want %q", w.buf, full, want)
		}
		if utf8.Valid(text) {
			got, lead := answerText(w.buf, full)
			if !bytes.HasPrefix(want[lead:], got) || !utf8.Valid(got) || !full && len(got) != len(want)-lead {
				t.Fatalf("answer %q (lead %d) of %q", got, lead, w.buf)
			}
		}
	})
}

func TestExplainBlobError(t *testing.T) {
	rules := []config.Rule{{Name: "never-delete", Action: "deny"}, {Name: "review-prod-writes", Action: "review"}}
	xmlErr := func(code, msg string) []byte {
		return []byte(`<?xml version="1.0" encoding="utf-8"?><Error><Code>` + code + `</Code><Message>` + msg + `</Message></Error>`)
	}
	for _, tc := range []struct {
		name     string
		status   int
		body     []byte
		rule     string
		action   string
		approval int64
		next     string
		errHas   string
	}{
		{"denied", 403, xmlErr("WeirPolicyDenied", `weir: DeleteBlob is denied by policy rule "never-delete": deleting is not allowed. Nothing in this request was run.`),
			"never-delete", "deny", 0, "do not retry", "never-delete"},
		{"default deny", 403, xmlErr("WeirPolicyDenied", `weir: PutBlob is not allowed: no policy rule allows it (default deny).`),
			"default-deny", "", 0, "do not retry", "default deny"},
		{"async review", 403, xmlErr("WeirApprovalRequired", `weir: this command needs a human's approval under policy rule "review-prod-writes"; it was not run. Approval request 17 was opened; once an approver runs ...`),
			"review-prod-writes", "review", 17, "approval_status", "Approval request 17"},
		{"still pending", 403, xmlErr("WeirApprovalRequired", `weir: this command is waiting for approval (request 18, rule "review-prod-writes"). Send it again unchanged`),
			"review-prod-writes", "review", 18, "approval_status", "waiting"},
		{"approver denied", 403, xmlErr("WeirApprovalRequired", `weir: approval request 19 was denied by alice: no. The command was not run.`),
			"weir", "", 19, "do not retry", "denied by alice"},
		{"refused", 403, xmlErr("WeirRequestRefused", `weir: the query parameter "sig" is not one weir understands`),
			"weir", "", 0, "change it", "sig"},
		{"token", 403, xmlErr("WeirAuthenticationFailed", `weir refused the token: expired`),
			"", "", 0, "new one", "expired"},
		{"azure", 404, xmlErr("BlobNotFound", "The specified blob does not exist.\nRequestId:abc\nTime:now"),
			"", "", 0, "blob_list", "Azure Storage: BlobNotFound: The specified blob does not exist."},
		{"no body", 502, nil, "", "", 0, "fix the request", "Azure Storage answered 502: Bad Gateway"},
		{"not xml", 500, []byte("<html>oops"), "", "", 0, "", "500"},
	} {
		f := explainBlobError(tc.status, "", tc.body, rules)
		if f.Rule != tc.rule || f.RuleAction != tc.action || f.ApprovalRequestID != tc.approval || !strings.Contains(f.NextStep, tc.next) || !strings.Contains(f.Error, tc.errHas) {
			t.Errorf("%s: %+v", tc.name, f)
		}
		if strings.Contains(f.Error, "RequestId") {
			t.Errorf("%s: Azure's request id lines kept: %q", tc.name, f.Error)
		}
	}
}
