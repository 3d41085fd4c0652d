package mask

import (
	"bufio"
	"bytes"
	"os"
	"testing"
	"unicode/utf8"
)

// fuzzSeeds are the positive cases, M08, and the false-positive and golden
// corpora.
func fuzzSeeds(t testing.TB) []string {
	var seeds []string
	for _, tc := range append(positiveCases(), m08()...) {
		seeds = append(seeds, tc.in, zwSplit(tc.in, '\u200b'))
	}
	for _, f := range []string{"testdata/false_positives.txt", "testdata/golden/mixed.txt"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			seeds = append(seeds, sc.Text())
		}
	}
	return seeds
}

// FuzzMaskString: masking never panics, keeps valid UTF-8 valid, returns
// the input when it counts nothing, and is idempotent in every format.
func FuzzMaskString(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	maskers := []*Masker{newMasker(f, FormatPartial), newMasker(f, FormatRedact), newMasker(f, FormatHash)}
	f.Fuzz(func(t *testing.T, s string) {
		for _, m := range maskers {
			out, c := m.MaskString(s)
			if c.IsZero() != (out == s) {
				t.Fatalf("%s: counts %v but changed=%v: %q -> %q", m.format, c, out != s, s, out)
			}
			if utf8.ValidString(s) && !utf8.ValidString(out) {
				t.Fatalf("%s: invalid UTF-8 from %q: %q", m.format, s, out)
			}
			if again, c2 := m.MaskString(out); again != out {
				t.Fatalf("%s: not idempotent (%v):\n in   %q\n once %q\n twice %q", m.format, c2, s, out, again)
			}
			if ob, _ := m.MaskBytes([]byte(s)); string(ob) != out {
				t.Fatalf("%s: MaskBytes differs from MaskString", m.format)
			}
			v, vc := m.MaskValue(s)
			if vc[ColumnRule] != 1 || utf8.ValidString(s) && !utf8.ValidString(v) {
				t.Fatalf("%s: MaskValue(%q) = %q %v", m.format, s, v, vc)
			}
		}
	})
}

// fuzzLimits are tiny so that short fuzz inputs cross the stream's commit
// points (they still exceed every detector's fixed length: an IBAN, a
// storage key, a GitHub token).
var fuzzLimits = limits{span: 128, ctx: 64}

// FuzzStream: the stream's output equals MaskBytes of the whole input for
// any chunking (chunk sizes derived from the fuzzed seed).
func FuzzStream(f *testing.F) {
	for i, s := range fuzzSeeds(f) {
		f.Add([]byte(s), uint64(i))
	}
	m := newMasker(f, FormatPartial)
	m.lim = fuzzLimits
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		want, wc := m.MaskBytes(data)
		r := testRand(seed)
		every := 1 + r.IntN(64)
		var out bytes.Buffer
		s := m.newStream(&out, every)
		for p := data; len(p) > 0; {
			k := min(len(p), 1+r.IntN(1+r.IntN(300)))
			s.Write(p[:k])
			p = p[k:]
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), want) || s.Counts() != wc {
			t.Fatalf("stream differs (every=%d):\n got  %q\n want %q\n counts %v vs %v", every, out.Bytes(), want, s.Counts(), wc)
		}
	})
}
