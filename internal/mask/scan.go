package mask

import (
	"encoding/binary"
	"slices"
)

// limits bounds how far any detector looks, which is what lets a Stream
// decide a region of text from a bounded window around it.
type limits struct {
	// span is the longest span a detector reports (PEM blocks and JWTs
	// longer than this are masked up to this length).
	span int
	// ctx is how far a detector looks before a span's start or after its
	// end (SAS query context, "AccountKey" proximity, boundaries).
	ctx int
}

var defaultLimits = limits{span: 16 << 10, ctx: 1 << 10}

// Every detector is entered from one trigger byte.
const (
	tNone  = iota
	tDigit // card, phone, iban
	tAt    // email, URL credentials
	tEq    // azure key (==), key=value secrets, sas sig=
	tUnder // github tokens
	tDash  // PEM (-----BEGIN), openai (sk-)
	tJ     // JWT (eyJ)
	tI     // AWS (AKIA / ASIA)
)

func triggerTable(set detSet) (t [256]uint8) {
	if set.has(CreditCard) || set.has(Phone) || set.has(IBAN) {
		for c := '0'; c <= '9'; c++ {
			t[c] = tDigit
		}
	}
	if set.has(Email) || set.has(ConnectionString) {
		t['@'] = tAt
	}
	if set.has(AzureStorageKey) || set.has(ConnectionString) || set.has(SASToken) {
		t['='] = tEq
	}
	if set.has(GitHubToken) {
		t['_'] = tUnder
	}
	if set.has(PrivateKey) || set.has(OpenAIKey) {
		t['-'] = tDash
	}
	if set.has(JWT) || set.has(WeirToken) {
		t['J'] = tJ
	}
	if set.has(AWSAccessKey) {
		t['I'] = tI
	}
	return t
}

var allTrig = triggerTable(allDetectors)

// cand is a detected span of the (normalized) text.
type cand struct {
	start, end int
	det        Detector
}

// priority breaks ties between candidates with the same start and length:
// lower wins.
var priority = [numDetectors]uint8{
	ConnectionString: 0,
	AzureStorageKey:  1,
	SASToken:         2,
	PrivateKey:       3,
	WeirToken:        4,
	JWT:              5,
	GitHubToken:      6,
	AWSAccessKey:     7,
	OpenAIKey:        8,
	IBAN:             9,
	CreditCard:       10,
	Email:            11,
	Phone:            12,
}

func cmpCand(a, b cand) int {
	if a.start != b.start {
		return a.start - b.start
	}
	if la, lb := a.end-a.start, b.end-b.start; la != lb {
		return lb - la
	}
	return int(priority[a.det]) - int(priority[b.det])
}

// scanner collects candidates over one text. The first candidates go to
// a fixed array so that a scanner on the stack does not allocate.
type scanner struct {
	b    []byte
	set  detSet
	lim  limits
	n    int
	arr  [16]cand
	more []cand // all candidates once arr overflowed
	// jwtSkip: 'eyJ' triggers starting before this index are known to
	// fail (their base64url run is not followed by '.').
	jwtSkip int
	// kvFrom/kvEnd memoize the last plain key=value value scan: no
	// terminator in [kvFrom, kvEnd), and one at kvEnd if kvTerm.
	kvFrom, kvEnd int
	kvTerm        bool
}

func (sc *scanner) emit(start, end int, d Detector) {
	c := cand{start, end, d}
	if sc.more == nil {
		if sc.n < len(sc.arr) {
			sc.arr[sc.n] = c
			sc.n++
			return
		}
		sc.more = append(make([]cand, 0, 4*len(sc.arr)), sc.arr[:]...)
	}
	sc.more = append(sc.more, c)
}

// find returns the spans to mask in text: all candidates of the detectors
// in set, resolved leftmost-first (longest, then by priority, at equal
// starts) without overlaps, ignoring candidates that start before minStart.
// The result is appended to buf, or, when there were more candidates than
// the scanner's fixed array, returned in the scanner's own heap slice.
func (m *Masker) find(text []byte, set detSet, minStart int, buf []cand) []cand {
	trig := &m.trig
	if set == allDetectors {
		trig = &allTrig
	}
	sc := scanner{b: text, set: set, lim: m.lim}
	sc.run(trig)
	cands := sc.arr[:sc.n]
	if sc.more != nil {
		cands = sc.more
	}
	if len(cands) == 0 {
		return buf
	}
	if len(cands) > 1 {
		slices.SortFunc(cands, cmpCand)
	}
	if sc.more != nil {
		buf = sc.more[:0] // resolve in place: already on the heap
	}
	last := minStart
	for _, c := range cands {
		if c.start < last {
			continue
		}
		buf = append(buf, c)
		last = c.end
	}
	return buf
}

// run is the hot loop: one table lookup per byte until a trigger byte.
func (sc *scanner) run(trig *[256]uint8) {
	b := sc.b
	n := len(b)
	i := 0
	for {
		// Skip non-trigger bytes, eight at a time while possible.
		for i+8 <= n {
			if trig[b[i]]|trig[b[i+1]]|trig[b[i+2]]|trig[b[i+3]]|
				trig[b[i+4]]|trig[b[i+5]]|trig[b[i+6]]|trig[b[i+7]] != 0 {
				break
			}
			i += 8
		}
		for i < n && trig[b[i]] == 0 {
			i++
		}
		if i >= n {
			return
		}
		switch trig[b[i]] {
		case tDigit:
			i = sc.digits(i)
			continue
		case tAt:
			sc.at(i)
		case tEq:
			sc.equals(i)
		case tUnder:
			sc.github(i)
		case tDash:
			sc.dash(i)
		case tJ:
			sc.jwt(i)
		case tI:
			sc.aws(i)
		}
		i++
	}
}

// apply appends orig[from:to] to dst with every span replaced by its
// masked form, counting into c. Spans are in text coordinates; nt maps them
// back to orig (nil: text is orig). It returns the extended slice and the
// end of the last replaced input range (which may exceed to when a span's
// input range was rounded out to a normalization segment).
func (m *Masker) apply(dst, orig []byte, from, to int, nt *normText, text []byte, spans []cand, c *Counts) ([]byte, int) {
	last := from
	for _, s := range spans {
		os, oe := s.start, s.end
		if nt != nil {
			os, oe = nt.origStart(s.start), nt.origEnd(s.end-1)
		}
		c[s.det]++
		if oe <= last {
			continue // inside the previous span's rounded input range
		}
		if os < last {
			os = last
		}
		dst = append(dst, orig[last:os]...)
		dst = m.render(dst, s.det, text[s.start:s.end])
		last = oe
	}
	if last < to {
		dst = append(dst, orig[last:to]...)
		last = to
	}
	return dst, last
}

// isASCII reports whether b has no byte >= 0x80.
func isASCII(b []byte) bool {
	i := 0
	for ; i+32 <= len(b); i += 32 {
		x := binary.LittleEndian.Uint64(b[i:]) | binary.LittleEndian.Uint64(b[i+8:]) |
			binary.LittleEndian.Uint64(b[i+16:]) | binary.LittleEndian.Uint64(b[i+24:])
		if x&0x8080808080808080 != 0 {
			return false
		}
	}
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 != 0 {
			return false
		}
	}
	for ; i < len(b); i++ {
		if b[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Character classes.
const (
	cDigit = 1 << iota
	cUpper
	cLower
	cB64    // '+' '/'
	cURL    // '-' '_'
	cLocal  // e-mail local-part punctuation: . _ % + -
	cSpace  // ' ' \t \r \n \v \f
	cDomain // '-' (with letters, digits and bytes >= 0x80)
)

var class = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] |= cDigit
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= cUpper
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= cLower
	}
	t['+'] |= cB64 | cLocal
	t['/'] |= cB64
	t['-'] |= cURL | cLocal | cDomain
	t['_'] |= cURL | cLocal
	t['.'] |= cLocal
	t['%'] |= cLocal
	for _, c := range " \t\r\n\v\f" {
		t[c] |= cSpace
	}
	for c := 0x80; c < 0x100; c++ {
		t[c] |= cLocal | cDomain
	}
	return t
}()

func isDigit(c byte) bool  { return c-'0' < 10 }
func isUpper(c byte) bool  { return c-'A' < 26 }
func isLower(c byte) bool  { return c-'a' < 26 }
func isLetter(c byte) bool { return class[c]&(cUpper|cLower) != 0 }
func isAlnum(c byte) bool  { return class[c]&(cDigit|cUpper|cLower) != 0 }
func isWord(c byte) bool   { return isAlnum(c) || c == '_' }
func isB64(c byte) bool    { return class[c]&(cDigit|cUpper|cLower|cB64) != 0 }
func isB64URL(c byte) bool { return class[c]&(cDigit|cUpper|cLower|cURL) != 0 }
func isSpace(c byte) bool  { return class[c]&cSpace != 0 }
func isLocal(c byte) bool  { return class[c]&(cDigit|cUpper|cLower|cLocal) != 0 }
func isDomain(c byte) bool { return class[c]&(cDigit|cUpper|cLower|cDomain) != 0 }

func lower(c byte) byte {
	if isUpper(c) {
		return c + 'a' - 'A'
	}
	return c
}

// isEscLetter reports whether c, after a backslash, is a JSON/C escape that
// stands for a separator (\n \t \r \b \f).
func isEscLetter(c byte) bool {
	switch c {
	case 'n', 't', 'r', 'b', 'f':
		return true
	}
	return false
}

// escapedAt reports whether b[p] is the letter of a backslash escape such
// as the n of "\n" (which in JSON or log text separates words).
func escapedAt(b []byte, p int) bool {
	return p >= 1 && b[p-1] == '\\' && isEscLetter(b[p])
}

// wordBefore reports whether a word character ([A-Za-z0-9_]) that is not
// the letter of a backslash escape precedes position p.
func wordBefore(b []byte, p int) bool {
	return p > 0 && isWord(b[p-1]) && !escapedAt(b, p-1)
}

func hasPrefix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[:len(s)]) == s
}

// hasPrefixFold is hasPrefix ignoring ASCII case; s must be lower case.
func hasPrefixFold(b []byte, s string) bool {
	if len(b) < len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// containsFold reports whether b contains s ignoring ASCII case; s must be
// lower case.
func containsFold(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if lower(b[i]) == s[0] && hasPrefixFold(b[i:], s) {
			return true
		}
	}
	return false
}
