package blob

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
)

// rawRequest sends exactly the request line and headers given, over TCP,
// so that no client library cleans the path first. When key is set it
// signs the request the SharedKey way over the raw path, as an agent
// holding weir's connection string would.
func rawRequest(t *testing.T, method, target string, hdr map[string]string, acct string, key []byte) (*http.Response, string) {
	t.Helper()
	u, _ := url.Parse(env.srv.URL)
	h := http.Header{}
	for k, v := range hdr {
		h.Set(k, v)
	}
	h.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("x-ms-version", "2021-06-08")
	if key != nil {
		rawPath, rawQuery, _ := strings.Cut(target, "?")
		h.Set("Authorization", "SharedKey "+acct+":"+testSign(method, h, acct, rawPath, rawQuery, key))
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, u.Host)
	h.Write(&b)
	b.WriteString("\r\n")
	io.WriteString(c, b.String())
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// testSign is an independent SharedKey signer (byte-ordered headers, as
// the Python SDK does), the test's own client code.
func testSign(method string, h http.Header, acct, rawPath, rawQuery string, key []byte) string {
	var lines []string
	cl := h.Get("Content-Length")
	if cl == "0" {
		cl = ""
	}
	lines = append(lines, method, h.Get("Content-Encoding"), h.Get("Content-Language"), cl, h.Get("Content-MD5"), h.Get("Content-Type"), "",
		h.Get("If-Modified-Since"), h.Get("If-Match"), h.Get("If-None-Match"), h.Get("If-Unmodified-Since"), h.Get("Range"))
	var xms []string
	for k := range h {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-ms-") {
			xms = append(xms, lk+":"+h.Get(k))
		}
	}
	sort.Strings(xms)
	lines = append(lines, xms...)
	res := "/" + acct + rawPath
	q, _ := url.ParseQuery(rawQuery)
	var keys []string
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		res += "\n" + strings.ToLower(k) + ":" + strings.Join(q[k], ",")
	}
	lines = append(lines, res)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.Join(lines, "\n")))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// agentCreds are the account name and key of a fresh weir connection string.
func agentCreds(t *testing.T) (string, []byte) {
	cs, _ := connString(t)
	var acct string
	var key []byte
	for _, kv := range strings.Split(cs, ";") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "AccountName":
			acct = v
		case "AccountKey":
			key, _ = base64.StdEncoding.DecodeString(v)
		}
	}
	return acct, key
}

// TestRawSignedRequestWorks proves the raw client is a valid agent, so
// that the refusals below are refusals of the path, not of the client.
func TestRawSignedRequestWorks(t *testing.T) {
	acct, key := agentCreds(t)
	resp, body := rawRequest(t, "GET", "/blob/lake/reports/q1%2Fsummary.txt", nil, acct, key)
	if resp.StatusCode != 200 || body != "quarter one was fine\n" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	resp, body = rawRequest(t, "GET", "/blob/lake/REPORTS/q1/summary.txt", nil, acct, key)
	if resp.StatusCode != 200 {
		t.Fatalf("container names are case-insensitive: status %d body %q", resp.StatusCode, body)
	}
}

// H01: path tricks are refused after authentication (so they are
// audited), never forwarded.
func TestPathTricksRefused(t *testing.T) {
	acct, key := agentCreds(t)
	for _, target := range []string{
		"/blob/lake/reports/..%2Fscratch%2Fkeep.txt",
		"/blob/lake/reports/../scratch/keep.txt",
		"/blob/lake/reports/./customers.csv",
		"/blob/lake/reports//customers.csv",
		"/blob/lake/reports/q1%252Fsummary.txt",
		"/blob/lake/reports%2Fcustomers.csv",
		"/blob/lake/reports;x=y/customers.csv",
		"/blob/lake/reports/q1%5Csummary.txt",
		"/blob/lake/reports/q1\\summary.txt",
		"/blob/lake/reports/customers.csv/",
		"/blob/lake/%2e%2e/reports/customers.csv",
		"/blob/lake/reports/%2e%2e/scratch/keep.txt",
		"/blob/lake/reports/customers.csv?comp=list&comp=list",
		"/blob/lake/reports/customers.csv?x-ms-foo=1",
	} {
		resp, body := rawRequest(t, "GET", target, nil, acct, key)
		// weir's ServeMux answers dot segments and '//' with a redirect to
		// the cleaned path before the front end runs: nothing is forwarded,
		// and a followed redirect is a new request, authenticated (the
		// signature covered the old path) and decided on its own.
		if resp.StatusCode < 300 || strings.Contains(body, "Lovelace") || strings.Contains(body, "do not delete") {
			t.Errorf("%s: status %d body %q", target, resp.StatusCode, body)
		}
	}
}

// H09: credentials the agent brings are refused.
func TestForeignCredentialsRefused(t *testing.T) {
	realKey, _ := base64.StdEncoding.DecodeString(accountKey)
	cases := []struct {
		name   string
		target string
		hdr    map[string]string
		acct   string
		key    []byte
		code   string
	}{
		{"agent SAS", "/blob/lake/reports/customers.csv?sv=2021-06-08&sr=b&sp=r&se=2099-01-01&sig=abc", nil, "", nil, "WeirAuthenticationFailed"},
		{"SAS with odd case", "/blob/lake/reports/customers.csv?SIG=abc", nil, "", nil, "WeirAuthenticationFailed"},
		{"SharedKey of the real account", "/blob/lake/reports/customers.csv", nil, account, realKey, "WeirAuthenticationFailed"},
		{"foreign bearer", "/blob/lake/reports/customers.csv", map[string]string{"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJzdG9yYWdlIn0.c2ln"}, "", nil, "WeirAuthenticationFailed"},
		{"anonymous", "/blob/lake/reports/customers.csv", nil, "", nil, "WeirNoAuthentication"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := rawRequest(t, "GET", c.target, c.hdr, c.acct, c.key)
			if resp.StatusCode != 403 || !strings.Contains(body, "<Code>"+c.code+"</Code>") || strings.Contains(body, "Lovelace") {
				t.Fatalf("status %d body %s", resp.StatusCode, body)
			}
			if !strings.Contains(body, "weir") {
				t.Errorf("the message does not say what to do: %s", body)
			}
		})
	}
	t.Run("weir key, tampered signature", func(t *testing.T) {
		acct, key := agentCreds(t)
		key[0] ^= 1
		resp, body := rawRequest(t, "GET", "/blob/lake/reports/customers.csv", nil, acct, key)
		if resp.StatusCode != 403 || strings.Contains(body, "Lovelace") {
			t.Fatalf("status %d body %s", resp.StatusCode, body)
		}
	})
	t.Run("weir bearer token", func(t *testing.T) {
		tok, _ := token(t, "ci-bot", time.Hour)
		resp, body := rawRequest(t, "GET", "/blob/lake/reports?restype=container&comp=list", map[string]string{"Authorization": "Bearer " + tok}, "", nil)
		if resp.StatusCode != 200 || !strings.Contains(body, "customers.csv") {
			t.Fatalf("status %d body %s", resp.StatusCode, body)
		}
	})
	t.Run("copy source credential header", func(t *testing.T) {
		acct, key := agentCreds(t)
		resp, body := rawRequest(t, "PUT", "/blob/lake/scratch/c.txt", map[string]string{"x-ms-copy-source": env.azurite + "/reports/customers.csv", "x-ms-copy-source-authorization": "Bearer x", "Content-Length": "0"}, acct, key)
		if resp.StatusCode != 403 {
			t.Fatalf("status %d body %s", resp.StatusCode, body)
		}
	})
}

// H11: framing the Go server refuses before weir sees the request.
func TestAmbiguousFramingRefused(t *testing.T) {
	acct, key := agentCreds(t)
	for name, hdr := range map[string]map[string]string{
		"CL and TE":      {"Content-Length": "5", "Transfer-Encoding": "chunked", "x-ms-blob-type": "BlockBlob"},
		"TE not chunked": {"Transfer-Encoding": "identity", "x-ms-blob-type": "BlockBlob"},
	} {
		resp, body := rawRequest(t, "PUT", "/blob/lake/scratch/framing.txt", hdr, acct, key)
		if resp.StatusCode < 400 {
			t.Errorf("%s: status %d %s", name, resp.StatusCode, body)
		}
	}
	if exists(t, "scratch", "framing.txt") {
		t.Fatal("an ambiguously framed upload landed")
	}
}

// H10: an absolute-form request target could name another host; weir
// takes only origin-form targets under /blob/.
func TestAbsoluteFormRefused(t *testing.T) {
	acct, key := agentCreds(t)
	resp, body := rawRequest(t, "GET", "http://evilcorp.blob.core.windows.net/blob/lake/reports/customers.csv", nil, acct, key)
	if resp.StatusCode != 400 || strings.Contains(body, "Lovelace") {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
}

// H16: range reads go through policy (attrs.range); an allowed range of
// a text blob is masked.
func TestRangeReads(t *testing.T) {
	acct, key := agentCreds(t)
	resp, body := rawRequest(t, "GET", "/blob/lake/secret-ranges/a.txt", map[string]string{"x-ms-range": "bytes=0-7"}, acct, key)
	if resp.StatusCode != 403 || !strings.Contains(body, "range-reads-of-reports") || strings.Contains(body, "01234567") {
		t.Fatalf("a range read the policy denies: status %d body %s", resp.StatusCode, body)
	}
	resp, body = rawRequest(t, "GET", "/blob/lake/secret-ranges/a.txt", nil, acct, key)
	if resp.StatusCode != 200 || body != "0123456789abcdef\n" {
		t.Fatalf("the whole blob: status %d body %q", resp.StatusCode, body)
	}
	// Ranges masked one by one would give away a value split across them
	// (bytes 34-40 "ada@exa", 41-49 "mple.com,"; 0-57 "…4111 111",
	// 58-100 "1 1111 1111…"), and az sends x-ms-range on every download, so
	// a policy cannot simply refuse ranges: a part of a text blob is refused.
	for _, r := range []string{"bytes=34-40", "bytes=41-49", "bytes=0-57", "bytes=58-100", "bytes=40-100"} {
		resp, body = rawRequest(t, "GET", "/blob/lake/reports/customers.csv", map[string]string{"x-ms-range": r}, acct, key)
		if resp.StatusCode != 416 || !strings.Contains(body, "download it whole") || strings.Contains(body, "1111") || strings.Contains(body, "@exa") {
			t.Fatalf("a part of a text blob (%s): status %d %v body %q", r, resp.StatusCode, resp.Header, body)
		}
	}
	// A range covering the whole blob (az asks bytes=0-33554431) is masked.
	resp, body = rawRequest(t, "GET", "/blob/lake/reports/customers.csv", map[string]string{"x-ms-range": "bytes=0-33554431"}, acct, key)
	if resp.StatusCode != 206 || strings.Contains(body, "ada@example.com") || !strings.Contains(body, "Ada Lovelace") {
		t.Fatalf("a range covering the whole blob: status %d body %q", resp.StatusCode, body)
	}
	// Binary blobs are not masked, so their ranges pass.
	if _, err := env.direct.UploadBuffer(context.Background(), "big", "range.bin", []byte("\x00\x01234\xff\xfe\x00"), &azblob.UploadBufferOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/octet-stream")}}); err != nil {
		t.Fatal(err)
	}
	// (weir sniffs the bytes of the range it is sent: a printable range of
	// a binary blob counts as text and is refused, failing closed.)
	resp, body = rawRequest(t, "GET", "/blob/lake/big/range.bin", map[string]string{"x-ms-range": "bytes=0-4"}, acct, key)
	if resp.StatusCode != 206 || body != "\x00\x01234" {
		t.Fatalf("a range of a binary blob: status %d body %q", resp.StatusCode, body)
	}
	// Text stored under a binary content type is text all the same: its
	// ranges are refused and a whole read is masked.
	if _, err := env.direct.UploadBuffer(context.Background(), "big", "people.bin", []byte("name,email\nAda Lovelace,ada@example.com\n"), &azblob.UploadBufferOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/octet-stream")}}); err != nil {
		t.Fatal(err)
	}
	resp, body = rawRequest(t, "GET", "/blob/lake/big/people.bin", map[string]string{"x-ms-range": "bytes=0-20"}, acct, key)
	if resp.StatusCode != 416 || strings.Contains(body, "ada@") {
		t.Fatalf("a range of text stored as octet-stream: status %d body %q", resp.StatusCode, body)
	}
	resp, body = rawRequest(t, "GET", "/blob/lake/big/people.bin", nil, acct, key)
	if resp.StatusCode != 200 || strings.Contains(body, "ada@example.com") || !strings.Contains(body, "Ada Lovelace") || resp.Header.Get("Content-MD5") != "" {
		t.Fatalf("text stored as octet-stream: status %d body %q md5 %q", resp.StatusCode, body, resp.Header.Get("Content-MD5"))
	}
}
