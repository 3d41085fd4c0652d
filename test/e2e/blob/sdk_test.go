package blob

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

type blobHTTPHeaders = blob.HTTPHeaders

func download(t *testing.T, ctx context.Context, container, name string) (string, error) {
	t.Helper()
	c := agentClient(t)
	resp, err := c.DownloadStream(ctx, container, name, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestAllowedReadIsMasked(t *testing.T) {
	got, err := download(t, context.Background(), "reports", "customers.csv")
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"ada@example.com", "4111 1111 1111 1111", "alan.turing@example.org", "5500 0000 0000 0004"} {
		if strings.Contains(got, secret) {
			t.Errorf("download leaked %q:\n%s", secret, got)
		}
	}
	if !strings.Contains(got, "Ada Lovelace") {
		t.Errorf("download lost the unmasked text:\n%s", got)
	}
}

func exists(t *testing.T, container, name string) bool {
	t.Helper()
	_, err := env.direct.ServiceClient().NewContainerClient(container).NewBlobClient(name).GetProperties(context.Background(), nil)
	return err == nil
}

// respErr is the Azure error the SDK surfaced.
func respErr(t *testing.T, err error) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want an Azure response error, got %v", err)
	}
	return re
}

func TestListBlobsThroughWeir(t *testing.T) {
	c := agentClient(t)
	var names []string
	pager := c.NewListBlobsFlatPager("reports", nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			names = append(names, *b.Name)
		}
	}
	if strings.Join(names, ",") != "customers.csv,q1/summary.txt" {
		t.Fatalf("listed %v", names)
	}
}

func TestDeleteDenied(t *testing.T) {
	ctx := context.Background()
	c := agentClient(t)
	_, err := c.DeleteBlob(ctx, "scratch", "keep.txt", nil)
	re := respErr(t, err)
	if re.StatusCode != 403 || !strings.Contains(err.Error(), "never-delete") {
		t.Fatalf("got %v", err)
	}
	if !exists(t, "scratch", "keep.txt") {
		t.Fatal("the blob was deleted")
	}
	// The refusal is in the audit log, decided by the rule.
	recs, err := env.st.ReadAudit(ctx, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		if r.Type == "command" && strings.Contains(string(r.Data), `"operation":"DeleteBlob"`) && strings.Contains(string(r.Data), `"rule":"never-delete"`) {
			found = true
		}
	}
	if !found {
		t.Fatal("no audit record of the denied delete")
	}
}

func TestWritesFollowPolicy(t *testing.T) {
	ctx := context.Background()
	c := agentClient(t)
	if _, err := c.UploadBuffer(ctx, "scratch", "notes/new.txt", []byte("hello\n"), nil); err != nil {
		t.Fatalf("an allowed write failed: %v", err)
	}
	if !exists(t, "scratch", "notes/new.txt") {
		t.Fatal("the allowed write did not land")
	}
	_, err := c.UploadBuffer(ctx, "prod-data", "x.txt", []byte("hello\n"), nil)
	if re := respErr(t, err); re.StatusCode != 403 || !strings.Contains(err.Error(), "review-prod-writes") {
		t.Fatalf("a write to prod-* must go to review: %v", err)
	}
	if exists(t, "prod-data", "x.txt") {
		t.Fatal("the write under review landed")
	}
	// Minting a user delegation key is refused by policy.
	_, err = c.ServiceClient().GetUserDelegationCredential(ctx, service.KeyInfo{Start: to.Ptr(time.Now().UTC().Format(sas.TimeFormat)), Expiry: to.Ptr(time.Now().Add(time.Hour).UTC().Format(sas.TimeFormat))}, nil)
	if err == nil || !strings.Contains(err.Error(), "no-credential-minting") {
		t.Fatalf("GetUserDelegationKey: %v", err)
	}
}

func TestBatchWithForbiddenPartRefusedWhole(t *testing.T) {
	ctx := context.Background()
	for _, n := range []string{"scratch/b1.txt", "prod-data/b2.txt", "scratch/b3.txt"} {
		c, b, _ := strings.Cut(n, "/")
		if _, err := env.direct.UploadBuffer(ctx, c, b, []byte(n), nil); err != nil {
			t.Fatal(err)
		}
	}
	tier := func(c, b string) string {
		p, err := env.direct.ServiceClient().NewContainerClient(c).NewBlobClient(b).GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return *p.AccessTier
	}
	svc := agentClient(t).ServiceClient()
	// One forbidden part (a write to prod-*, under review) refuses all.
	bb, err := svc.NewBatchBuilder()
	if err != nil {
		t.Fatal(err)
	}
	must(t, bb.SetTier("scratch", "b1.txt", blob.AccessTierCool, nil))
	must(t, bb.SetTier("prod-data", "b2.txt", blob.AccessTierCool, nil))
	_, err = svc.SubmitBatch(ctx, bb, nil)
	if re := respErr(t, err); re.StatusCode != 403 || !strings.Contains(err.Error(), "statement 2 of 2 (SetBlobTier)") {
		t.Fatalf("got %v", err)
	}
	if tier("scratch", "b1.txt") == string(blob.AccessTierCool) || tier("prod-data", "b2.txt") == string(blob.AccessTierCool) {
		t.Fatal("a part of the refused batch ran")
	}
	// A batch of deletes: refused whole, nothing deleted.
	cc := svc.NewContainerClient("scratch")
	cb, _ := cc.NewBatchBuilder()
	must(t, cb.Delete("b1.txt", nil))
	must(t, cb.Delete("b3.txt", nil))
	_, err = cc.SubmitBatch(ctx, cb, nil)
	if re := respErr(t, err); re.StatusCode != 403 || !strings.Contains(err.Error(), "never-delete") {
		t.Fatalf("got %v", err)
	}
	if !exists(t, "scratch", "b1.txt") || !exists(t, "scratch", "b3.txt") {
		t.Fatal("a blob of the refused batch was deleted")
	}
	// A batch of allowed parts is re-signed part by part and runs.
	bb, _ = svc.NewBatchBuilder()
	must(t, bb.SetTier("scratch", "b1.txt", blob.AccessTierCool, nil))
	must(t, bb.SetTier("scratch", "b3.txt", blob.AccessTierCool, nil))
	resp, err := svc.SubmitBatch(ctx, bb, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Responses {
		if r.Error != nil {
			t.Fatalf("sub-request failed: %v", r.Error)
		}
	}
	if tier("scratch", "b1.txt") != string(blob.AccessTierCool) {
		t.Fatal("the allowed batch did not run")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestCopySources(t *testing.T) {
	ctx := context.Background()
	c := agentClient(t).ServiceClient().NewContainerClient("scratch").NewBlobClient("copied.txt")
	_, err := c.StartCopyFromURL(ctx, "https://evilcorp.blob.core.windows.net/loot/customers.csv", nil)
	if re := respErr(t, err); re.StatusCode != 403 || !strings.Contains(err.Error(), "evilcorp") {
		t.Fatalf("got %v", err)
	}
	_, err = c.StartCopyFromURL(ctx, "http://10.0.0.1:10000/devstoreaccount1/reports/customers.csv", nil)
	if re := respErr(t, err); re.StatusCode != 403 {
		t.Fatalf("a copy from another host: %v", err)
	}
	// From the target's own account (path-style on Azurite) it is allowed.
	if _, err := c.StartCopyFromURL(ctx, env.azurite+"/scratch/keep.txt", nil); err != nil {
		t.Fatalf("copy within the account: %v", err)
	}
}

func TestGzipJSONMasked(t *testing.T) {
	ctx := context.Background()
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	io.WriteString(zw, `{"customers":[{"name":"Ada","email":"ada@example.com","card":"4111111111111111"}]}`)
	zw.Close()
	_, err := env.direct.UploadBuffer(ctx, "reports", "c.json.gz", zb.Bytes(), &azblob.UploadBufferOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json"), BlobContentEncoding: to.Ptr("gzip")}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := agentClient(t).DownloadStream(ctx, "reports", "c.json.gz", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// weir re-encodes the masked body as gzip, as declared; Go's transport
	// (which asked for gzip itself) decodes it again on the way in.
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(got, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(got))
		if err != nil {
			t.Fatal(err)
		}
		if got, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(string(got), "ada@example.com") || strings.Contains(string(got), "4111111111111111") || !strings.Contains(string(got), `"name":"Ada"`) {
		t.Fatalf("got %s", got)
	}
	// An encoding weir cannot decode is refused, never passed unscanned.
	_, err = env.direct.UploadBuffer(ctx, "reports", "c.json.br", []byte("not really brotli ada@example.com"), &azblob.UploadBufferOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json"), BlobContentEncoding: to.Ptr("br")}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = agentClient(t).DownloadStream(ctx, "reports", "c.json.br", nil)
	if err == nil || !strings.Contains(err.Error(), "UnsupportedContentEncoding") {
		t.Fatalf("got %v", err)
	}
}

func TestMetadataAndBinary(t *testing.T) {
	ctx := context.Background()
	bin := []byte{0, 1, 2, 'a', 'd', 'a', '@', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0xff}
	_, err := env.direct.UploadBuffer(ctx, "reports", "img.bin", bin, &azblob.UploadBufferOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/octet-stream")},
		Metadata:    map[string]*string{"owner": to.Ptr("ada@example.com")}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := agentClient(t).DownloadStream(ctx, "reports", "img.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, bin) {
		t.Fatalf("binary content must pass untouched: %q", got)
	}
	if o := resp.Metadata["Owner"]; o == nil || strings.Contains(*o, "ada@example.com") {
		t.Fatalf("metadata not masked: %v", resp.Metadata)
	}
}

func TestRevokedTokenStops(t *testing.T) {
	ctx := context.Background()
	cs, claims := connString(t)
	c, _ := azblob.NewClientFromConnectionString(cs, nil)
	if _, err := c.ServiceClient().NewContainerClient("reports").GetProperties(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := env.auth.Revoke(ctx, claims.ID, "local:test"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.ServiceClient().NewContainerClient("reports").GetProperties(ctx, nil)
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a revoked token still works")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// H17: a gzip bomb in a text blob is cut off, never passed on unscanned
// or decoded without bound.
func TestGzipBombCut(t *testing.T) {
	ctx := context.Background()
	var zb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zb, gzip.BestCompression)
	zw.Write(bytes.Repeat([]byte("a"), 64<<20))
	zw.Close()
	_, err := env.direct.UploadBuffer(ctx, "reports", "bomb.txt", zb.Bytes(), &azblob.UploadBufferOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("text/plain"), BlobContentEncoding: to.Ptr("gzip")}})
	if err != nil {
		t.Fatal(err)
	}
	cs, _ := connString(t)
	c, err := azblob.NewClientFromConnectionString(cs, &azblob.ClientOptions{ClientOptions: azpolicy.ClientOptions{Retry: azpolicy.RetryOptions{MaxRetries: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.DownloadStream(ctx, "reports", "bomb.txt", nil)
	if err != nil {
		return // refused outright is fine too
	}
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: -1})
	n, err := io.Copy(io.Discard, body)
	resp.Body.Close()
	if err == nil || n >= 64<<20 {
		t.Fatalf("read %d bytes of a %d:1 gzip bomb without an error", n, (64<<20)/zb.Len())
	}
}

// An upload that carries Content-MD5 (the SDKs' transactional validation)
// reaches the account with the header weir signed, and a wrong digest is
// still caught by the account.
func TestUploadWithContentMD5(t *testing.T) {
	ctx := context.Background()
	bb := agentClient(t).ServiceClient().NewContainerClient("scratch").NewBlockBlobClient("md5.txt")
	body := []byte("checked by the account\n")
	sum := md5.Sum(body)
	if _, err := bb.Upload(ctx, streaming.NopCloser(bytes.NewReader(body)), &blockblob.UploadOptions{
		TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
	}); err != nil {
		t.Fatalf("upload with Content-MD5: %v", err)
	}
	if !exists(t, "scratch", "md5.txt") {
		t.Fatal("the upload did not land")
	}
	wrong := md5.Sum([]byte("something else"))
	_, err := bb.Upload(ctx, streaming.NopCloser(bytes.NewReader(body)), &blockblob.UploadOptions{
		TransactionalValidation: blob.TransferValidationTypeMD5(wrong[:]),
	})
	if re := respErr(t, err); re.StatusCode != 400 {
		t.Fatalf("a wrong Content-MD5 must be refused by the account: %v", err)
	}
}

// Text the masker cannot read byte-wise (UTF-16, as Excel's "Unicode
// Text" export writes it) is refused, never passed on unscanned: the
// detectors look for ASCII patterns and would see a NUL between every
// character.
func TestUTF16TextNotPassedUnmasked(t *testing.T) {
	ctx := context.Background()
	utf16le := func(s string) []byte {
		b := []byte{0xff, 0xfe}
		for _, r := range s {
			b = append(b, byte(r), 0)
		}
		return b
	}
	for name, c := range map[string]struct {
		body []byte
		ct   string
	}{
		"unicode.txt":     {utf16le(customersCSV), "text/plain"},
		"declared16.csv":  {utf16le(customersCSV)[2:], "text/csv; charset=utf-16le"},
		"declared32.json": {[]byte(customersCSV), "application/json; charset=utf-32"},
	} {
		_, err := env.direct.UploadBuffer(ctx, "reports", name, c.body, &azblob.UploadBufferOptions{HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr(c.ct)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { env.direct.DeleteBlob(context.Background(), "reports", name, nil) })
		resp, err := agentClient(t).DownloadStream(ctx, "reports", name, nil)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Fatalf("%s (%s) was served: %q", name, c.ct, b)
		}
		if !strings.Contains(err.Error(), "UnsupportedCharset") {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
