package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"

	weirblob "github.com/weir-gw/weir/internal/proxy/blob"
)

// heapWatch samples the heap while a transfer runs, so a front end that
// buffered whole bodies would show.
func heapWatch() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// TestOneGigabyteStreamed uploads and downloads 1 GiB through weir with
// the Go SDK (about 6 s on two cores; much longer under -race, where it
// runs only with WEIR_BLOB_1GB=1). -short skips it. bench/blob.sh
// measures the same with az and weir in its own process.
func TestOneGigabyteStreamed(t *testing.T) {
	if testing.Short() || (raceEnabled && os.Getenv("WEIR_BLOB_1GB") != "1") {
		t.Skip("1 GiB transfer skipped (-short, or -race without WEIR_BLOB_1GB=1)")
	}
	const size = 1 << 30
	ctx := context.Background()
	c := agentClient(t)
	src := io.LimitReader(rand.NewChaCha8([32]byte{7}), size)
	h := sha256.New()
	stop := heapWatch()
	if _, err := c.UploadStream(ctx, "big", "one.bin", io.TeeReader(src, h), &azblob.UploadStreamOptions{BlockSize: 8 << 20, Concurrency: 2}); err != nil {
		t.Fatal(err)
	}
	want := h.Sum(nil)
	resp, err := c.DownloadStream(ctx, "big", "one.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Reset()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	peak := stop()
	if err != nil || n != size || !bytes.Equal(h.Sum(nil), want) {
		t.Fatalf("downloaded %d bytes, err %v, same content: %v", n, err, bytes.Equal(h.Sum(nil), want))
	}
	t.Logf("peak heap in use (SDK client and weir in one process): %d MiB", peak>>20)
	if peak > 256<<20 {
		t.Fatalf("peak heap %d MiB: something buffers whole bodies", peak>>20)
	}
}

// H16: a large text blob is masked in a stream; values straddling the
// front end's read chunks and the masker's windows are still caught, and
// memory stays bounded.
func TestLargeTextMaskedInStream(t *testing.T) {
	ctx := context.Background()
	var b strings.Builder
	b.WriteString("id,note,email\n")
	for i := 0; b.Len() < 16<<20; i++ {
		// Lines of varying length move the emails across every offset.
		fmt.Fprintf(&b, "%d,%s,user%d@example.com\n", i, strings.Repeat("x", i%97), i)
	}
	body := b.String()
	_, err := env.direct.UploadBuffer(ctx, "reports", "large.csv", []byte(body), &azblob.UploadBufferOptions{HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("text/csv")}})
	if err != nil {
		t.Fatal(err)
	}
	stop := heapWatch()
	resp, err := agentClient(t).DownloadStream(ctx, "reports", "large.csv", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	stop()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(got), "@example.com"); n != 0 {
		t.Fatalf("%d emails left unmasked", n)
	}
	if strings.Count(string(got), "\n") != strings.Count(body, "\n") {
		t.Fatal("masking changed the line structure")
	}
}

// A token's Blob session ends after the idle timeout and is audited.
func TestIdleSessionEnds(t *testing.T) {
	h, err := weirblob.New(weirblob.Options{Gateway: env.gw, Secret: env.secret, IdleTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	mux := http.NewServeMux()
	mux.Handle(weirblob.Prefix, h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, claims := token(t, "ci-bot", time.Hour)
	c, err := azblob.NewClientFromConnectionString(weirblob.ConnectionString(srv.URL+weirblob.Prefix+"lake", claims.ID, env.secret), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.ServiceClient().NewContainerClient("reports").GetProperties(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	if h.Sessions() != 1 {
		t.Fatalf("%d sessions for one token", h.Sessions())
	}
	deadline := time.Now().Add(30 * time.Second)
	for h.Sessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle session did not end")
		}
		time.Sleep(50 * time.Millisecond)
	}
	recs, err := env.st.ReadAudit(context.Background(), 0, 1000000)
	if err != nil {
		t.Fatal(err)
	}
	var sid string
	for _, r := range recs {
		if r.Type == "session.start" && strings.Contains(string(r.Data), claims.ID) {
			sid = r.SessionID
		}
	}
	for _, r := range recs {
		if sid != "" && r.SessionID == sid && r.Type == "session.end" && strings.Contains(string(r.Data), `"reason":"idle"`) && strings.Contains(string(r.Data), `"statements":3`) {
			return
		}
	}
	t.Fatalf("no session.end (idle, 3 statements) for session %q", sid)
}
