package mask

import "unicode/utf8"

// SniffBytes is how much of a body LooksText needs to decide.
const SniffBytes = 8 << 10

// LooksText reports whether the first bytes of a body are UTF-8 text: no
// NUL, few control characters. A stored Content-Type is whatever the
// uploader said, so a front end that passes "binary" bodies unmasked asks
// this of the bytes themselves: a CSV stored as application/octet-stream
// is still text, and is masked as text.
func LooksText(b []byte) bool {
	// The sniffed prefix may end inside a multi-byte character.
	for i := 0; i < 3 && len(b) > 0 && !utf8.Valid(b); i++ {
		b = b[:len(b)-1]
	}
	if !utf8.Valid(b) {
		return false
	}
	ctl := 0
	for _, c := range b {
		switch {
		case c == 0:
			return false
		case c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f':
			ctl++
		}
	}
	return ctl*100 <= len(b)
}
