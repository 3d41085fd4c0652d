package mask

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// cleanText returns about n bytes of log lines and prose with the usual
// numbers, identifiers and key=value pairs but nothing to mask.
func cleanText(n int) []byte {
	r := testRand(42)
	lines := []string{
		"2024-01-15T10:23:%02d.%03dZ INFO  http: GET /api/v1/orders/%d?limit=50&offset=%d status=200 bytes=%d took=%dms request_id=%08x-%04x\n",
		"2024-01-15 10:23:%02d,%03d WARN  [worker-%d] retrying job %d after %dms (attempt %d of 5), queue depth=%d\n",
		"The quick brown fox jumps over the lazy dog while the service keeps %d connections open and %d idle in the pool; latency p99 was %d.%dms.\n",
		"level=info ts=2024-01-15T10:%02d:%02dZ caller=server.go:%d msg=\"query finished\" rows=%d duration=%d.%03ds db=orders version=1.%d.%d\n",
		"commit %040x Author: build bot; sha256 %064x size %d\n",
		"Order ORD-2024-%06d shipped to warehouse 7, tracking UUID 123e4567-e89b-12d3-a456-%012d, weight %d.%d kg.\n",
	}
	var buf bytes.Buffer
	for buf.Len() < n {
		switch k := r.IntN(len(lines)); k {
		case 0:
			fmt.Fprintf(&buf, lines[0], r.IntN(60), r.IntN(1000), r.IntN(1e6), r.IntN(1e4), r.IntN(1e5), r.IntN(900), r.Uint32(), r.IntN(65536))
		case 1:
			fmt.Fprintf(&buf, lines[1], r.IntN(60), r.IntN(1000), r.IntN(16), r.IntN(1e6), r.IntN(5000), r.IntN(5), r.IntN(100))
		case 2:
			fmt.Fprintf(&buf, lines[2], r.IntN(500), r.IntN(100), r.IntN(200), r.IntN(10))
		case 3:
			fmt.Fprintf(&buf, lines[3], r.IntN(60), r.IntN(60), r.IntN(900), r.IntN(1e4), r.IntN(10), r.IntN(1000), r.IntN(30), r.IntN(30))
		case 4:
			fmt.Fprintf(&buf, lines[4], r.Uint64(), r.Uint64(), r.IntN(1e7))
		case 5:
			fmt.Fprintf(&buf, lines[5], r.IntN(1e6), r.IntN(1e9), r.IntN(100), r.IntN(10))
		}
	}
	return buf.Bytes()[:n]
}

// denseText returns about n bytes of lines that each carry personal data
// or a secret.
func denseText(n int) []byte {
	r := testRand(43)
	cards := []string{"4242424242424242", "5555 5555 5555 4444", "378282246310005", "6011-1111-1111-1117"}
	ibans := []string{"DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "FR1420041010050500013M02606"}
	jwt := testJWT()
	key := azureKeyFor(1)
	var buf bytes.Buffer
	for i := 0; buf.Len() < n; i++ {
		switch r.IntN(6) {
		case 0:
			fmt.Fprintf(&buf, "{\"id\":%d,\"email\":\"user%d@example.com\",\"phone\":\"+1 415 555 %04d\",\"card\":\"%s\"}\n", i, i, r.IntN(10000), cards[r.IntN(len(cards))])
		case 1:
			fmt.Fprintf(&buf, "customer %d: iban %s, contact (415) 555-%04d, mail first.last%d@mail.example.org\n", i, ibans[r.IntN(len(ibans))], 2000+r.IntN(8000), i)
		case 2:
			fmt.Fprintf(&buf, "Authorization: Bearer %s\n", jwt)
		case 3:
			fmt.Fprintf(&buf, "DefaultEndpointsProtocol=https;AccountName=acct%d;AccountKey=%s;EndpointSuffix=core.windows.net\n", i, key)
		case 4:
			fmt.Fprintf(&buf, "env: AWS_ACCESS_KEY_ID=%s DB_PASSWORD=pw%dX! GITHUB_TOKEN=%s\n", awsKey(), i, githubClassic("gh"+"p", uint64(i%7)))
		case 5:
			fmt.Fprintf(&buf, "%s\n", sasURL(uint64(i%5)))
		}
	}
	return buf.Bytes()[:n]
}

func benchMask(b *testing.B, data []byte) {
	m := newMasker(b, FormatPartial)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	var c Counts
	for b.Loop() {
		_, n := m.MaskBytes(data)
		c = n
	}
	b.ReportMetric(float64(c.Total()), "masked/op")
}

// BenchmarkMaskClean: 1 MiB of logs and prose without anything to mask.
func BenchmarkMaskClean(b *testing.B) { benchMask(b, cleanText(1<<20)) }

// BenchmarkMaskDense: 1 MiB where every line has personal data or a secret.
func BenchmarkMaskDense(b *testing.B) { benchMask(b, denseText(1<<20)) }

// BenchmarkMaskCleanUnicode: clean text that is not ASCII (NFKC quick
// check on every call).
func BenchmarkMaskCleanUnicode(b *testing.B) {
	s := strings.Repeat("Grüße aus Köln — 東京の天気は晴れ, 2024-01-15 10:23. Ça va? ", 1<<20/70)
	benchMask(b, []byte(s))
}

// BenchmarkMaskNormalize: text that needs normalization (zero-width
// characters) and has something to mask.
func BenchmarkMaskNormalize(b *testing.B) {
	s := strings.Repeat("note\u200b: write to a\u200blice@example.com about order 12, café ", 1<<20/60)
	benchMask(b, []byte(s))
}

func BenchmarkMaskValue(b *testing.B) {
	m := newMasker(b, FormatPartial)
	vals := []string{"alice@example.com", "4242 4242 4242 4242", "Smithson", "DE89370400440532013000"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.MaskValue(vals[i%len(vals)])
		i++
	}
}

func BenchmarkStream(b *testing.B) {
	data := append(cleanText(1<<20), denseText(1<<18)...)
	m := newMasker(b, FormatPartial)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	r := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		s := m.NewStream(io.Discard)
		for p := data; len(p) > 0; {
			k := min(len(p), 1+r.IntN(32<<10))
			s.Write(p[:k])
			p = p[k:]
		}
		s.Close()
	}
}
