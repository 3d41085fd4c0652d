package blob

import "testing"

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
