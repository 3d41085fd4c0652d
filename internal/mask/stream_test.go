package mask

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// smallLimits shrink the span and context limits so that short test inputs
// exercise the stream's windowing; MaskBytes uses the same limits, so the
// outputs must still be equal.
func smallMasker(t testing.TB) *Masker {
	m := newMasker(t, FormatPartial)
	m.lim = limits{span: 512, ctx: 128}
	return m
}

// streamAll writes data to a stream in the given chunk sizes (cycled) and
// returns the output.
func streamAll(t testing.TB, m *Masker, data []byte, processEvery int, sizes ...int) ([]byte, Counts) {
	var out bytes.Buffer
	s := m.newStream(&out, processEvery)
	k := 0
	for p := data; len(p) > 0; k++ {
		n := min(len(p), max(sizes[k%len(sizes)], 1))
		if w, err := s.Write(p[:n]); w != n || err != nil {
			t.Fatalf("Write = %d, %v", w, err)
		}
		p = p[n:]
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), s.Counts()
}

func checkStream(t *testing.T, m *Masker, data []byte, processEvery int, sizes ...int) {
	t.Helper()
	want, wc := m.MaskBytes(data)
	got, gc := streamAll(t, m, data, processEvery, sizes...)
	if !bytes.Equal(got, want) || gc != wc {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("stream (chunks %v) differs from MaskBytes at %d:\n got %q\nwant %q\ncounts %v vs %v",
			sizes, i, got[max(0, i-40):min(len(got), i+80)], want[max(0, i-40):min(len(want), i+80)], gc, wc)
	}
}

// TestStreamSplitMatrix cuts every M08 secret at every byte position
// across two writes, after enough text that the stream has already
// committed output, with the default limits and with small ones.
func TestStreamSplitMatrix(t *testing.T) {
	type setup struct {
		name   string
		m      *Masker
		prefix []byte
		every  int
	}
	def := newMasker(t, FormatPartial)
	small := smallMasker(t)
	setups := []setup{
		{"default", def, cleanText(def.lim.span + def.lim.ctx + 3000), 4096},
		{"small", small, cleanText(small.lim.span + small.lim.ctx + 700), 97},
	}
	cases := append(m08(), detCase{name: "rsa pem", in: pemRSALike(30)},
		detCase{name: "zero-width card", in: "4242\u200b4242\u200b4242\u200b4242"},
		detCase{name: "json pem", in: `{"key":"` + strings.ReplaceAll(pemEC(31), "\n", `\n`) + `"}`})
	for _, su := range setups {
		for _, tc := range cases {
			t.Run(su.name+"/"+tc.name, func(t *testing.T) {
				data := append(append(bytes.Clone(su.prefix), tc.in...), " and then some more text.\n"...)
				start := len(su.prefix) - 2
				for cut := start; cut <= len(data); cut++ {
					checkStream(t, su.m, data, su.every, cut, len(data))
				}
			})
		}
	}
}

// mixedText interleaves clean text, PII-dense text, M08 items and
// Unicode with invisible characters.
func mixedText(seed uint64, n int) []byte {
	r := testRand(seed)
	parts := [][]byte{cleanText(4096), denseText(4096)}
	for _, tc := range m08() {
		parts = append(parts, []byte(tc.in))
	}
	parts = append(parts,
		[]byte("Grüße ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ e\u0301\u200b 4242\u2060424242424242 ﬁ "),
		[]byte(strings.Repeat("\u200b", 300)+"x@y.co"),
		[]byte(pemRSALike(seed)))
	var buf bytes.Buffer
	for buf.Len() < n {
		p := parts[r.IntN(len(parts))]
		a := r.IntN(len(p))
		b := a + r.IntN(len(p)-a+1)
		if r.IntN(3) == 0 {
			a, b = 0, len(p)
		}
		buf.Write(p[a:b])
		if r.IntN(4) == 0 {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes()
}

func TestStreamRandomChunks(t *testing.T) {
	def := newMasker(t, FormatPartial)
	small := smallMasker(t)
	for seed := uint64(0); seed < 12; seed++ {
		data := mixedText(seed, 150<<10)
		r := rand.New(rand.NewPCG(seed, 99))
		var sizes []int
		for range 50 {
			sizes = append(sizes, 1+r.IntN(1+r.IntN(40000)))
		}
		checkStream(t, def, data, 64<<10, sizes...)
		checkStream(t, def, data, 1000, sizes...)
		checkStream(t, small, data, 1000, sizes...)
		checkStream(t, small, data, 16, 1, 7, 300, 3)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("boom")
	}
	f.n--
	return len(p), nil
}

func TestStreamErrors(t *testing.T) {
	m := newMasker(t, FormatPartial)
	s := m.NewStream(&failWriter{})
	data := cleanText(200 << 10)
	var err error
	for p := data; len(p) > 0 && err == nil; p = p[min(len(p), 4096):] {
		_, err = s.Write(p[:min(len(p), 4096)])
	}
	if err == nil || err.Error() != "boom" {
		t.Errorf("write error not reported: %v", err)
	}
	if s.Close() == nil {
		t.Error("Close after a write error returned nil")
	}
	s2 := m.NewStream(&bytes.Buffer{})
	s2.Write([]byte("alice@example.com"))
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s2.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
	if s2.Counts()[Email] != 1 {
		t.Errorf("counts %v", s2.Counts())
	}
}

// TestStreamMemory: the stream's buffer stays bounded on a long input.
func TestStreamMemory(t *testing.T) {
	m := newMasker(t, FormatPartial)
	var out bytes.Buffer
	s := m.NewStream(&out)
	chunk := mixedText(5, 64<<10)
	maxBuf := 0
	for range 64 { // 4 MiB
		s.Write(chunk)
		maxBuf = max(maxBuf, cap(s.buf))
	}
	s.Close()
	if maxBuf > 512<<10 {
		t.Errorf("stream buffer grew to %d bytes", maxBuf)
	}
	if out.Len() < 4<<20-(1<<20) {
		t.Errorf("output %d bytes", out.Len())
	}
}

// TestStreamInvisibleFlood: megabytes of zero-width characters (which
// normalize to nothing) do not make the stream buffer grow without bound.
func TestStreamInvisibleFlood(t *testing.T) {
	m := newMasker(t, FormatPartial)
	var out bytes.Buffer
	s := m.NewStream(&out)
	zw := []byte(strings.Repeat("\u200b", 10000))
	maxBuf := 0
	for range 100 { // 3 MB
		s.Write(zw)
		maxBuf = max(maxBuf, len(s.buf))
	}
	s.Write([]byte(" mail alice@example.com"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if maxBuf > 2<<20 {
		t.Errorf("buffer grew to %d bytes", maxBuf)
	}
	if !bytes.HasSuffix(out.Bytes(), []byte(" mail a****@e*****.com")) || out.Len() != 3000000+len(" mail a****@e*****.com") {
		t.Errorf("output %d bytes, tail %q", out.Len(), out.Bytes()[max(0, out.Len()-40):])
	}
}
