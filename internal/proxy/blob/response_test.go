package blob

import (
	"bytes"
	"testing"
)

func TestTextTheMaskerCanRead(t *testing.T) {
	for _, c := range []struct {
		ct   string
		body string
		ok   bool
	}{
		{"text/csv", "id,email\n1,a@b.c\n", true},
		{"text/csv; charset=UTF-8", "x", true},
		{"text/plain; charset=iso-8859-1", "x", true},
		{"text/plain; charset=utf-16le", "x\x00", false},
		{"application/json; charset=utf-32", "x", false},
		{"text/plain; charset=cp037", "x", false},
		{"text/plain", "\xff\xfei\x00d\x00", false},
		{"text/plain", "\xfe\xff\x00i\x00d", false},
		{"text/plain", "i\x00d\x00,\x00e\x00m\x00a\x00i\x00l\x00", false},
		{"text/plain", "a stray \x00 in a long enough line of text", true},
		{"", "", true},
	} {
		ok := byteWise(charset(c.ct)) && !wideText([]byte(c.body))
		if ok != c.ok {
			t.Errorf("%q %q: readable %v, want %v", c.ct, c.body, ok, c.ok)
		}
	}
}

// The listing filter empties every Content-MD5 however the stream is cut.
func TestStripHashesAcrossWrites(t *testing.T) {
	in := `<Blob><Name>a</Name><Properties><Content-MD5>yk1Z6rlLIsUNN6LrwH99dA==</Content-MD5><Content-Type>text/csv</Content-Type></Properties></Blob>` +
		`<Blob><Name>&lt;Content-MD5&gt;</Name><Properties><Content-MD5 /><Content-MD5>AAAA</Content-MD5></Properties></Blob><Content-M`
	want := `<Blob><Name>a</Name><Properties><Content-MD5 /><Content-Type>text/csv</Content-Type></Properties></Blob>` +
		`<Blob><Name>&lt;Content-MD5&gt;</Name><Properties><Content-MD5 /><Content-MD5 /></Properties></Blob><Content-M`
	for cut := 0; cut <= len(in); cut++ {
		for _, step := range []int{1, 7, len(in)} {
			var out bytes.Buffer
			s := &stripHashes{w: &out}
			parts := []string{in[:cut], in[cut:]}
			for _, p := range parts {
				for len(p) > 0 {
					n := min(step, len(p))
					if _, err := s.Write([]byte(p[:n])); err != nil {
						t.Fatal(err)
					}
					p = p[n:]
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if out.String() != want {
				t.Fatalf("cut %d step %d:\n%s\nwant\n%s", cut, step, out.String(), want)
			}
		}
	}
}
