package blob

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
)

// sdkRequests runs the real azblob SDK against a server that only records
// what it received, and returns those requests: the reference for what a
// SharedKey-signed request looks like on the wire.
func sdkRequests(t *testing.T, account string, key []byte, do func(c *azblob.Client)) []*http.Request {
	t.Helper()
	var mu sync.Mutex
	var got []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Clone(context.Background()))
		mu.Unlock()
		w.Header().Set("x-ms-request-id", "1")
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	cred, err := azblob.NewSharedKeyCredential(account, base64.StdEncoding.EncodeToString(key))
	if err != nil {
		t.Fatal(err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(srv.URL+"/blob/lake", cred, &azblob.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	do(c)
	return got
}

func TestSharedKeyMatchesTheSDK(t *testing.T) {
	key := DeriveKey(make([]byte, 32), "tok_1")
	acct := "eyJh.eyJq.c2ln" // a weir token stands where the account name goes
	reqs := sdkRequests(t, acct, key, func(c *azblob.Client) {
		ctx := context.Background()
		// Metadata names that sort differently by byte and the Azure way.
		c.UploadBuffer(ctx, "reports", "q1/a b+c%.csv", []byte("x"), &azblob.UploadBufferOptions{
			Metadata:    map[string]*string{"a-b": to.Ptr("1"), "ab": to.Ptr("2"), "a_c": to.Ptr("3")},
			HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("text/csv")}})
		c.ServiceClient().NewContainerClient("reports").NewBlockBlobClient("x").StageBlock(ctx, "QUFB", streamingNop("abc"), &blockblob.StageBlockOptions{})
		c.DeleteBlob(ctx, "reports", "x", nil)
		c.CreateContainer(ctx, "scratch", nil)
	})
	if len(reqs) < 4 {
		t.Fatalf("the SDK sent %d requests", len(reqs))
	}
	for _, r := range reqs {
		scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		a, sig, _ := strings.Cut(cred, ":")
		if scheme != "SharedKey" || a != acct {
			t.Fatalf("authorization %q", r.Header.Get("Authorization"))
		}
		rawPath, rawQuery, _ := strings.Cut(r.RequestURI, "?")
		if !verifySharedKey(key, sig, r.Method, r.Header, acct, rawPath, rawQuery) {
			t.Errorf("%s %s: a valid SDK signature was refused", r.Method, r.RequestURI)
		}
		other := DeriveKey(make([]byte, 32), "tok_2")
		if verifySharedKey(other, sig, r.Method, r.Header, acct, rawPath, rawQuery) {
			t.Errorf("%s %s: verified under another token's key", r.Method, r.RequestURI)
		}
		h := r.Header.Clone()
		h.Set("x-ms-meta-extra", "1")
		if verifySharedKey(key, sig, r.Method, h, acct, rawPath, rawQuery) {
			t.Errorf("%s %s: a changed header still verified", r.Method, r.RequestURI)
		}
		if verifySharedKey(key, sig, r.Method, r.Header, acct, rawPath+"x", rawQuery) {
			t.Errorf("%s %s: a changed path still verified", r.Method, r.RequestURI)
		}
	}
}

// TestSignUpstreamRoundTrip: what weir signs upstream verifies under the
// same rules (the key of the real account).
func TestSignUpstreamRoundTrip(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	r, _ := http.NewRequest("PUT", "http://127.0.0.1:10000/devstoreaccount1/c/a%20b?comp=metadata", nil)
	r.Header.Set("x-ms-meta-a-b", "1")
	r.Header.Set("x-ms-meta-ab", "2")
	r.Header.Set("x-ms-date", "Fri, 27 Nov 2026 18:00:00 GMT")
	signSharedKey(r, "devstoreaccount1", key)
	_, sig, _ := strings.Cut(strings.TrimPrefix(r.Header.Get("Authorization"), "SharedKey "), ":")
	if !verifySharedKey(key, sig, "PUT", r.Header, "devstoreaccount1", r.URL.EscapedPath(), r.URL.RawQuery) {
		t.Fatal("weir's own upstream signature does not verify")
	}
}

func TestAzureHeaderOrder(t *testing.T) {
	// The Azure order ignores hyphens first: x-ms-meta-ab sorts before
	// x-ms-meta-a-c (abc... vs ac...), unlike byte order.
	for _, c := range []struct{ a, b string }{
		{"x-ms-meta-ab", "x-ms-meta-a-c"},
		{"x-ms-blob-type", "x-ms-date"},
		{"x-ms-a", "x-ms-a-"},
		{"x-ms-meta-a_c", "x-ms-meta-ab"},
	} {
		if !azureLess(c.a, c.b) || azureLess(c.b, c.a) {
			t.Errorf("want %s before %s", c.a, c.b)
		}
	}
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

func streamingNop(s string) nopCloser { return nopCloser{strings.NewReader(s)} }
