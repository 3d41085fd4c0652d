package blob

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
)

// sdkBatch returns a batch body and Content-Type as the azblob SDK builds them.
func sdkBatch(t testing.TB) (string, []byte) {
	var ct string
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct = r.Header.Get("Content-Type")
		body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusForbidden)
	}))
	defer srv.Close()
	cred, _ := azblob.NewSharedKeyCredential("acct", "AAAA")
	c, err := azblob.NewClientWithSharedKeyCredential(srv.URL+"/blob/lake", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc := c.ServiceClient().NewContainerClient("scratch")
	bb, _ := cc.NewBatchBuilder()
	bb.SetTier("a.txt", blob.AccessTierCool, nil)
	bb.SetTier("q1/b c.txt", blob.AccessTierHot, nil)
	cc.SubmitBatch(context.Background(), bb, nil)
	return ct, body
}

func TestParseBatchFromSDK(t *testing.T) {
	ct, body := sdkBatch(t)
	subs, err := parseBatch(ct, body)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 2 || subs[0].method != "PUT" || subs[0].query.Get("comp") != "tier" || !strings.HasPrefix(subs[1].rawPath, "/blob/lake/scratch/") || subs[1].id != "1" {
		t.Fatalf("%+v", subs)
	}
	if !strings.HasPrefix(subs[0].authz, "SharedKey acct:") {
		t.Fatalf("sub-request authorization %q", subs[0].authz)
	}
}

func TestParseBatchRefuses(t *testing.T) {
	ct, body := sdkBatch(t)
	_, params, _ := strings.Cut(ct, "boundary=")
	boundary := params
	part := func(s string) string {
		return "--" + boundary + "\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 0\r\n\r\n" + s + "\r\n--" + boundary + "--\r\n"
	}
	for name, c := range map[string]struct{ ct, body string }{
		"not multipart":   {"application/json", string(body)},
		"no boundary":     {"multipart/mixed", string(body)},
		"empty":           {ct, "--" + boundary + "--\r\n"},
		"garbage":         {ct, "hello"},
		"not http":        {ct, part("hello there")},
		"body in part":    {ct, part("DELETE /blob/lake/scratch/a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")},
		"wrong part type": {ct, strings.Replace(part("DELETE /blob/lake/scratch/a HTTP/1.1\r\n\r\n"), "application/http", "text/plain", 1)},
		"no content id":   {ct, strings.Replace(part("DELETE /blob/lake/scratch/a HTTP/1.1\r\n\r\n"), "Content-ID: 0\r\n", "", 1)},
	} {
		if _, err := parseBatch(c.ct, []byte(c.body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseBatch: no panic, and every accepted sub-request is a plain
// request without a body.
func FuzzParseBatch(f *testing.F) {
	ct, body := sdkBatch(f)
	f.Add(ct, body)
	f.Add(ct, []byte("--x--"))
	if seeds, _ := filepath.Glob("testdata/batch-*.txt"); len(seeds) > 0 {
		for _, s := range seeds {
			b, _ := os.ReadFile(s)
			f.Add(ct, b)
		}
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		subs, err := parseBatch(ct, body)
		if err != nil {
			return
		}
		if len(subs) == 0 || len(subs) > maxBatchParts {
			t.Fatalf("%d sub-requests accepted", len(subs))
		}
	})
}
