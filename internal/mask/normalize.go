package mask

import (
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// isInvisible reports the characters removed before matching: soft hyphen,
// Mongolian vowel separator, zero-width space/non-joiner/joiner, LRM/RLM,
// bidi embeddings and overrides, word joiner and invisible operators, bidi
// isolates, and the zero-width no-break space (BOM).
func isInvisible(r rune) bool {
	switch {
	case r == 0x00AD, r == 0x180E, r == 0xFEFF:
		return true
	case r >= 0x200B && r <= 0x200F, r >= 0x202A && r <= 0x202E:
		return true
	case r >= 0x2060 && r <= 0x2064, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// hasInvisible reports whether b contains a character isInvisible removes.
// All of them are encoded with lead byte C2, E1, E2 or EF.
func hasInvisible(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case 0xC2, 0xE1, 0xE2, 0xEF:
			r, _ := utf8.DecodeRune(b[i:])
			if isInvisible(r) {
				return true
			}
		}
	}
	return false
}

// isNormal reports whether matching b needs no normalization: it is in
// NFKC (by the quick check) and has no invisible characters.
func isNormal(b []byte) bool {
	return norm.NFKC.QuickSpan(b) == len(b) && !hasInvisible(b)
}

// normText is a normalized text with a map back to the input it came
// from. For every byte of text, start and end give the input range of the
// normalization segment that produced it (one character when unchanged; a
// whole segment, plus invisible characters removed after it, otherwise).
type normText struct {
	text       []byte
	start, end []int32
	kept       []byte  // scratch: input without invisible characters
	keptAt     []int32 // scratch: input offset of each kept byte, plus len(input)
}

// build normalizes in (NFKC, invisible characters removed) into nt,
// reusing nt's buffers.
func (nt *normText) build(in []byte) {
	// NFKC rarely grows text by more than a little; size for +1/8.
	want := len(in) + len(in)/8 + 16
	nt.text = grow(nt.text[:0], want)
	nt.start = grow(nt.start[:0], want)
	nt.end = grow(nt.end[:0], want)
	kept := grow(nt.kept[:0], len(in))
	at := grow(nt.keptAt[:0], len(in)+1)
	for i := 0; i < len(in); {
		c := in[i]
		if c < utf8.RuneSelf {
			kept = append(kept, c)
			at = append(at, int32(i))
			i++
			continue
		}
		r, size := utf8.DecodeRune(in[i:])
		if size > 1 && isInvisible(r) {
			i += size
			continue
		}
		for k := 0; k < size; k++ {
			kept = append(kept, in[i+k])
			at = append(at, int32(i+k))
		}
		i += size
	}
	at = append(at, int32(len(in)))
	nt.kept, nt.keptAt = kept, at

	var it norm.Iter
	it.Init(norm.NFKC, kept)
	pos := 0
	for !it.Done() {
		seg := it.Next()
		next := it.Pos()
		if string(seg) == string(kept[pos:next]) {
			// Unchanged: map byte for byte.
			for k := range seg {
				nt.start = append(nt.start, at[pos+k])
				nt.end = append(nt.end, at[pos+k+1])
			}
		} else {
			s, e := at[pos], at[next]
			for range seg {
				nt.start = append(nt.start, s)
				nt.end = append(nt.end, e)
			}
		}
		nt.text = append(nt.text, seg...)
		pos = next
	}
}

// origStart is the input offset where the text byte i's segment starts
// (len(input) for i == len(text)).
func (nt *normText) origStart(i int) int {
	if i >= len(nt.start) {
		return int(nt.keptAt[len(nt.keptAt)-1])
	}
	return int(nt.start[i])
}

// origEnd is the input offset where the text byte i's segment ends.
func (nt *normText) origEnd(i int) int { return int(nt.end[i]) }

// textIndex returns the first text index whose input offset is at or after
// off.
func (nt *normText) textIndex(off int) int {
	lo, hi := 0, len(nt.start)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if int(nt.start[mid]) < off {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// grow returns s (empty) with capacity for at least n elements.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, 0, n)
	}
	return s
}
