// Package mask finds sensitive content (personal data and secrets) in values
// and masks it. It knows nothing about PostgreSQL, HTTP or any other
// protocol: adapters hand it strings or byte slices and write back what it
// returns, together with per-detector counts for the audit record.
//
// There are two entry points, one for each kind of masking rule:
//
//   - Content rules ([Masker.MaskString], [Masker.MaskBytes], [Stream]) scan
//     free text with validating detectors and replace each detected span
//     with its masked form. Text outside detected spans is returned byte for
//     byte as it came in; text with nothing in it is returned as is, without
//     allocating.
//   - Column rules ([Masker.MaskValue], [Masker.AppendMaskedValue]) mask a
//     whole value that is sensitive because of where it came from, whatever
//     it looks like. The detectors only choose a recognisable partial form
//     (an e-mail address stays shaped like one).
//
// # Detection
//
// Detectors validate, they do not just match shapes: cards must pass Luhn and
// fall in a known IIN range with a length that range issues, IBANs must have
// their country's length and mod-97 check, JWT headers must decode to JSON
// with an "alg" member, and so on. Every detector is reached through a cheap
// trigger byte ('@', a digit, '=', '-', '_', 'J', 'I'), so text without
// those bytes costs one table lookup per byte, and no regular expressions
// are used. The detectors and their names are listed in [DetectorNames].
//
// # Normalization
//
// Text is matched after Unicode NFKC normalization with invisible characters
// removed (soft hyphen U+00AD, U+180E, zero-width space/joiners and bidi marks
// U+200B–U+200F, bidi embeddings U+202A–U+202E, word joiner and invisible
// operators U+2060–U+2064, bidi isolates U+2066–U+2069, and the BOM U+FEFF),
// so a card number written in full-width digits or an e-mail address split by
// zero-width spaces is still found. Pure ASCII text skips this step.
//
// When normalization changes the text, detection runs on the normalized text
// and each detected span is mapped back to the input: the output is the input
// with exactly those input ranges replaced by the masked form of the
// normalized span. Everything else, including invisible characters outside
// detected spans, is returned unchanged. (The masked form itself is computed
// from the normalized span, so a full-width card number is masked as
// "**** **** **** 4242" in ASCII.)
//
// # Formats
//
// [FormatPartial] keeps a little of the value so a human can tell values
// apart (a****@e*****.com, **** **** **** 4242, DE****************3000) and
// never anything of a secret beyond its well-known type prefix (ghp_****).
// [FormatRedact] replaces the value with "[REDACTED:<detector>]".
// [FormatHash] replaces it with "[hash:<16 letters>]", a keyed HMAC-SHA256 of
// the exact value, stable for one key so joins and GROUP BY over masked output
// still work, but not reversible by hashing a dictionary without the key. The
// hash uses the letters a–p instead of hex digits so that a masked value can
// never be mistaken for a number by a later pass. [FormatNull] makes column
// values NULL (see [Masker.MaskValue]); in free text it behaves like redact.
//
// Masked forms contain only ASCII letters, digits, '*', '[', ']', ':', '@',
// '.', '-', '_', '+' and characters copied from the input, never quotes,
// backslashes or control characters, so masking inside a JSON string or a
// CSV field keeps the container valid. Masking is idempotent: masking masked
// output changes nothing.
//
// # Limits
//
// No detection is longer than 16 KiB and no detector looks further than
// 1 KiB around it (that is what lets a [Stream] hold back only a bounded
// tail). A PEM block or JWT longer than that is masked through its first
// 16 KiB; a key=value secret through its first 4 KiB. Detection is on
// content shapes only: a password in a JSON or YAML member ("password":
// "…"), a bare password, or a secret split into pieces across separate
// values is not found here; column rules and lineage are the defence for
// those.
package mask

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// Format says how a detected or column-masked value is rendered.
type Format string

// The formats. The zero Format means FormatPartial.
const (
	FormatPartial Format = "partial"
	FormatRedact  Format = "redact"
	FormatHash    Format = "hash"
	FormatNull    Format = "null"
)

// MinHashKeyLen is the shortest key accepted for FormatHash.
const MinHashKeyLen = 16

// Config configures a Masker.
type Config struct {
	// Detectors names the content detectors to run (see DetectorNames).
	// An empty list runs none: MaskString then returns its input and only
	// column rules mask anything.
	Detectors []string
	// Format is how masked values are rendered; empty means partial.
	Format Format
	// HashKey keys the HMAC for FormatHash. Required (at least
	// MinHashKeyLen bytes) for that format, ignored otherwise.
	HashKey []byte
}

// Masker masks values. It is immutable after New and safe for concurrent
// use.
type Masker struct {
	format Format
	set    detSet
	trig   [256]uint8
	lim    limits
	hashes *sync.Pool // of hash.Hash (HMAC-SHA256 with the configured key)
}

// New returns a Masker for cfg. An unknown detector name or format is an
// error that lists the valid ones.
func New(cfg Config) (*Masker, error) {
	m := &Masker{format: cfg.Format, lim: defaultLimits}
	if m.format == "" {
		m.format = FormatPartial
	}
	switch m.format {
	case FormatPartial, FormatRedact, FormatNull:
	case FormatHash:
		if len(cfg.HashKey) < MinHashKeyLen {
			return nil, fmt.Errorf("mask: format %q needs a hash key of at least %d bytes", FormatHash, MinHashKeyLen)
		}
		key := slices.Clone(cfg.HashKey)
		m.hashes = &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}
	default:
		return nil, fmt.Errorf("mask: unknown format %q (valid: %s, %s, %s, %s)",
			cfg.Format, FormatPartial, FormatRedact, FormatHash, FormatNull)
	}
	for _, name := range cfg.Detectors {
		d, ok := ParseDetector(name)
		if !ok {
			return nil, fmt.Errorf("mask: unknown detector %q (valid: %s)", name, strings.Join(DetectorNames(), ", "))
		}
		m.set |= 1 << d
	}
	m.trig = triggerTable(m.set)
	return m, nil
}

// Format returns the configured format. Adapters that mask column values
// check for FormatNull to send a real NULL (see MaskValue).
func (m *Masker) Format() Format { return m.format }

// Detectors returns the names of the enabled content detectors, in the
// order of DetectorNames.
func (m *Masker) Detectors() []string {
	var out []string
	for d := Detector(0); d < numDetectors; d++ {
		if m.set.has(d) {
			out = append(out, d.String())
		}
	}
	return out
}

// MaskString masks every span of s that an enabled detector finds and
// counts the masked spans per detector. When nothing is found it returns s
// itself without allocating. See the package documentation for how
// normalized text is handled.
func (m *Masker) MaskString(s string) (string, Counts) {
	if len(s) == 0 || m.set == 0 {
		return s, Counts{}
	}
	out, c, changed := m.mask(unsafe.Slice(unsafe.StringData(s), len(s)))
	if !changed {
		return s, c
	}
	return unsafe.String(unsafe.SliceData(out), len(out)), c
}

// MaskBytes is MaskString for byte slices. It returns b itself when
// nothing is found; otherwise it returns a new slice and leaves b alone.
func (m *Masker) MaskBytes(b []byte) ([]byte, Counts) {
	if len(b) == 0 || m.set == 0 {
		return b, Counts{}
	}
	out, c, changed := m.mask(b)
	if !changed {
		return b, c
	}
	return out, c
}

// mask runs detection over b and, if anything is found, returns a new
// slice with the spans replaced.
func (m *Masker) mask(b []byte) (out []byte, c Counts, changed bool) {
	var nt *normText
	text := b
	if !isASCII(b) && !isNormal(b) {
		nt = new(normText)
		nt.build(b)
		text = nt.text
	}
	var buf [16]cand
	spans := m.find(text, m.set, 0, buf[:0])
	if len(spans) == 0 {
		return nil, c, false
	}
	out = make([]byte, 0, len(b)+24*len(spans))
	out, _ = m.apply(out, b, 0, len(b), nt, text, spans, &c)
	return out, c, true
}

// MaskValue masks a whole value because of where it came from (a column
// rule). The result always counts one value under ColumnRule.
//
//   - partial: if the whole value (trimmed, normalized) is one detected
//     value (any detector, enabled or not), that detector's partial form is
//     used: a****@e*****.com, **** **** **** 4242, DE****************3000,
//     "+* *** *** **71" for phones, ghp_**** for tokens. Otherwise the generic
//     form keeps the first and last character of values of six or more
//     characters ("S****h") and is "****" for shorter ones; the empty string
//     stays empty.
//   - redact: "[REDACTED:<detector>]" for a recognised value, else
//     "[REDACTED]".
//   - hash: "[hash:…]" over the exact bytes of the value, so equal values
//     hash equally.
//   - null: "". The adapter must send NULL instead when Format() is
//     FormatNull; if it forgets, the empty string still reveals nothing.
func (m *Masker) MaskValue(s string) (string, Counts) {
	out, c := m.AppendMaskedValue(nil, unsafe.Slice(unsafe.StringData(s), len(s)))
	return string(out), c
}

// AppendMaskedValue appends the column-rule masked form of v to dst (see
// MaskValue) and returns the extended slice.
func (m *Masker) AppendMaskedValue(dst, v []byte) ([]byte, Counts) {
	var c Counts
	c[ColumnRule] = 1
	switch m.format {
	case FormatNull:
		return dst, c
	case FormatHash:
		return m.appendHash(dst, v), c
	}
	text := v
	if !isASCII(v) && !isNormal(v) {
		var nt normText
		nt.build(v)
		text = nt.text
	}
	text = trimSpace(text)
	var buf [4]cand
	spans := m.find(text, allDetectors, 0, buf[:0])
	if len(spans) == 1 && spans[0].start == 0 && spans[0].end == len(text) {
		return m.render(dst, spans[0].det, text), c
	}
	if m.format == FormatRedact {
		return append(dst, "[REDACTED]"...), c
	}
	return appendGeneric(dst, text), c
}

// appendGeneric is the partial form of a value no detector recognises.
func appendGeneric(dst, v []byte) []byte {
	if len(v) == 0 {
		return dst
	}
	if utf8.RuneCount(v) < 6 {
		return append(dst, "****"...)
	}
	_, n1 := utf8.DecodeRune(v)
	_, n2 := utf8.DecodeLastRune(v)
	dst = append(dst, v[:n1]...)
	dst = append(dst, "****"...)
	return append(dst, v[len(v)-n2:]...)
}

func (m *Masker) appendHash(dst, v []byte) []byte {
	h := m.hashes.Get().(hash.Hash)
	h.Reset()
	h.Write(v)
	var buf [sha256.Size]byte
	sum := h.Sum(buf[:0])
	m.hashes.Put(h)
	dst = append(dst, "[hash:"...)
	for _, x := range sum[:8] {
		dst = append(dst, 'a'+x>>4, 'a'+x&15)
	}
	return append(dst, ']')
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// errClosed is returned by Write after Close.
var errClosed = errors.New("mask: write to closed stream")
