package blob

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
)

// The MD5 (or CRC64) of a text blob's unmasked bytes is an oracle for what
// masking hid: with the masked text and the hash, a low-entropy value (an
// SSN whose last four digits the partial mask shows) is found by trying
// 10^5 candidates. weir hands no such hash of a masked text blob out: not
// on GET or HEAD, nor in a listing.
func TestNoHashOfMaskedText(t *testing.T) {
	ctx := context.Background()
	orig := "name,ssn\nAda Lovelace,078-05-1120\n"
	if _, err := env.direct.UploadBuffer(ctx, "reports", "ssn.csv", []byte(orig), &azblob.UploadBufferOptions{
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("text/csv")}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.direct.DeleteBlob(context.Background(), "reports", "ssn.csv", nil) })
	acct, key := agentCreds(t)
	resp, masked := rawRequest(t, "GET", "/blob/lake/reports/ssn.csv", nil, acct, key)
	if resp.StatusCode != 200 || strings.Contains(masked, "078-05") {
		t.Fatalf("GET: %d %q", resp.StatusCode, masked)
	}
	var hashes []string
	for _, h := range []string{"Content-Md5", "X-Ms-Blob-Content-Md5", "X-Ms-Content-Crc64"} {
		hashes = append(hashes, resp.Header.Values(h)...)
	}
	head, _ := rawRequest(t, "HEAD", "/blob/lake/reports/ssn.csv", nil, acct, key)
	for _, h := range []string{"Content-Md5", "X-Ms-Blob-Content-Md5", "X-Ms-Content-Crc64"} {
		hashes = append(hashes, head.Header.Values(h)...)
	}
	_, listing := rawRequest(t, "GET", "/blob/lake/reports?restype=container&comp=list&prefix=ssn", nil, acct, key)
	for _, m := range regexp.MustCompile(`<Content-MD5>([^<]+)</Content-MD5>`).FindAllStringSubmatch(listing, -1) {
		hashes = append(hashes, m[1])
	}
	// What an agent does with a hash: fill the masked digits until the
	// MD5 matches. (The mask shows the last two digits: 10^7 candidates,
	// seconds; knowing the last four, as here to keep the test fast, 10^5.)
	for _, h := range hashes {
		want, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(want) != md5.Size {
			t.Errorf("weir handed out a content hash %q of a masked text blob", h)
			continue
		}
		for n := 0; n < 100000; n++ {
			d := fmt.Sprintf("%05d", n)
			cand := "name,ssn\nAda Lovelace," + d[:3] + "-" + d[3:] + "-1120\n"
			if sum := md5.Sum([]byte(cand)); string(sum[:]) == string(want) {
				t.Fatalf("the SSN was recovered from the masked text and the MD5 weir handed out: %q", cand)
			}
		}
		t.Errorf("weir handed out the MD5 %q of a masked text blob", h)
	}
}
