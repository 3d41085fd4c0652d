package mask

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
)

// ---- '@': e-mail addresses and URL credentials ----

// at handles an '@' at i.
func (sc *scanner) at(i int) {
	if sc.set.has(ConnectionString) && sc.urlCredential(i) {
		return
	}
	if sc.set.has(Email) {
		sc.email(i)
	}
}

// email emits an address around the '@' at i: a local part of up to 64
// characters from [A-Za-z0-9._%+-] and non-ASCII, a domain of at least two
// labels whose last label (the TLD) is at least two letters (or IDN).
// Package versions (pkg@1.2.3), retina assets (icon@2x.png) and git remotes
// (git@host:repo) are not addresses.
func (sc *scanner) email(i int) {
	b := sc.b
	n := len(b)
	s := i
	for s > 0 && i-s <= 64 && isLocal(b[s-1]) {
		s--
	}
	if i-s > 64 {
		return
	}
	if s > 0 && b[s-1] == '\\' && s < i && isEscLetter(b[s]) {
		s++ // "\nalice@…": the n belongs to the escape
	}
	for s < i && b[s] == '.' {
		s++
	}
	if s == i || b[i-1] == '.' || bytes.Contains(b[s:i], []byte("..")) {
		return
	}
	alnum := false
	for _, c := range b[s:i] {
		if isAlnum(c) || c >= 0x80 {
			alnum = true
			break
		}
	}
	if !alnum {
		return
	}
	// Domain labels (at most 254 bytes, and never a span longer than the
	// limit).
	maxDomain := min(254, sc.lim.span-66)
	e := i + 1
	labels := 0
	firstEnd := 0
	var lastStart, lastEnd int
	for {
		ls := e
		for e < n && e-i <= maxDomain && isDomain(b[e]) {
			e++
		}
		if e == ls || e-i > maxDomain {
			return
		}
		if e-ls > 63 || b[ls] == '-' || b[e-1] == '-' {
			return
		}
		labels++
		if labels == 1 {
			firstEnd = e
		}
		lastStart, lastEnd = ls, e
		if e+1 < n && b[e] == '.' && isDomain(b[e+1]) {
			e++
			continue
		}
		break
	}
	if labels < 2 {
		return
	}
	tld := b[lastStart:lastEnd]
	if len(tld) < 2 || !tldOK(tld) {
		return
	}
	// icon@2x.png
	if fl := b[i+1 : firstEnd]; labels == 2 && len(fl) >= 2 && fl[len(fl)-1] == 'x' && allDigits(fl[:len(fl)-1]) {
		return
	}
	// git@github.com:org/repo
	if string(b[s:i]) == "git" && lastEnd < n && b[lastEnd] == ':' {
		return
	}
	sc.emit(s, lastEnd, Email)
}

func tldOK(t []byte) bool {
	if hasPrefix(t, "xn--") {
		return true
	}
	for _, c := range t {
		if !isLetter(c) && c < 0x80 {
			return false
		}
	}
	return true
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return len(b) > 0
}

// urlCredential emits the password of scheme://user:password@host as a
// connection string secret and reports whether it found one.
func (sc *scanner) urlCredential(i int) bool {
	b := sc.b
	// Walk back over userinfo characters to the "://".
	colon := -1
	k := i
	for ; k > 0 && i-k < min(512, sc.lim.ctx); k-- {
		c := b[k-1]
		if c == '/' {
			if k >= 3 && b[k-2] == '/' && b[k-3] == ':' {
				break
			}
			return false
		}
		if c == ':' {
			colon = k - 1 // the leftmost colon separates user and password
		} else if c == '@' || isSpace(c) || c == '"' || c == '\'' || c == '<' || c == '>' || c == '\\' {
			return false
		}
	}
	if k < 3 || b[k-1] != '/' || b[k-2] != '/' || b[k-3] != ':' || colon < 0 || colon+1 >= i {
		return false
	}
	if isMaskedForm(b[colon+1 : i]) {
		return true
	}
	sc.emit(colon+1, i, ConnectionString)
	return true
}

// isMaskedForm reports values that are already this package's output.
func isMaskedForm(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	if hasPrefix(v, "[REDACTED") || hasPrefix(v, "[hash:") {
		return true
	}
	for _, c := range v {
		if c != '*' {
			return false
		}
	}
	return true
}

// ---- '=': storage keys, key=value secrets, SAS signatures ----

func (sc *scanner) equals(i int) {
	b := sc.b
	n := len(b)
	if i+1 < n && b[i+1] == '=' {
		if sc.set.has(AzureStorageKey) {
			sc.azureKey(i)
		}
		return
	}
	if i == 0 || i+1 >= n {
		return
	}
	switch lower(b[i-1]) {
	case 'y':
		if sc.set.has(ConnectionString) {
			if ks := keyBefore(b, i, "accountkey"); ks >= 0 {
				sc.kvSecret(i, false, false)
			} else if ks := keyBefore(b, i, "sharedaccesskey"); ks >= 0 {
				sc.kvSecret(i, false, false)
			}
		}
	case 'd':
		if sc.set.has(ConnectionString) {
			if ks := keyBefore(b, i, "password"); ks >= 0 {
				sc.kvSecret(i, false, false)
			} else if ks := keyBefore(b, i, "pwd"); ks >= 0 {
				sc.kvSecret(i, false, true)
			}
		}
	case 'e':
		if sc.set.has(ConnectionString) {
			if ks := keyBefore(b, i, "sharedaccesssignature"); ks >= 0 {
				sc.kvSecret(i, true, false)
			}
		}
	case 'g':
		if sc.set.has(SASToken) && i >= 3 && string(b[i-3:i]) == "sig" {
			if i == 3 || b[i-4] == '?' || b[i-4] == '&' || !isAlnum(b[i-4]) && b[i-4] != '_' {
				sc.sas(i)
			}
		}
	}
}

// keyBefore returns the start of key (lower case) ending right before the
// '=' at i, or -1. The key must start a word: after a non-alphanumeric
// byte (so DB_PASSWORD and db.password count), a backslash escape, as the
// capitalized tail of a camelCase name (dbPassword), or as the tail of an
// upper-case name (PGPASSWORD).
func keyBefore(b []byte, i int, key string) int {
	ks := i - len(key)
	if ks < 0 || !hasPrefixFold(b[ks:], key) {
		return -1
	}
	if ks == 0 || !isAlnum(b[ks-1]) || escapedAt(b, ks-1) || isLower(b[ks-1]) && isUpper(b[ks]) {
		return ks
	}
	// The tail of an upper-case environment variable name (PGPASSWORD).
	if isUpper(b[ks-1]) && allUpper(b[ks:i]) {
		return ks
	}
	return -1
}

func allUpper(b []byte) bool {
	for _, c := range b {
		if !isUpper(c) {
			return false
		}
	}
	return true
}

// kvSecret emits the value after the '=' at i. Quoted values ("…", '…',
// {…}) end at the closing quote; plain values end at ';', whitespace,
// quotes, '<' '>' ',' ')' a backslash, and (unless sas, for
// SharedAccessSignature whose value is a query string) '&'.
func (sc *scanner) kvSecret(i int, sas, pwd bool) {
	b := sc.b
	n := len(b)
	vs := i + 1
	limit := min(n, vs+min(sc.lim.span, 4096))
	var ve int
	if b[vs] == '\\' && vs+1 < n && b[vs+1] == '"' {
		// password=\"…\" inside a JSON string.
		vs += 2
		ve = vs
		for ve < limit && b[ve] != '\\' && b[ve] != '"' && b[ve] != '\n' {
			ve++
		}
		if ve > vs && !isMaskedForm(b[vs:ve]) {
			sc.emit(vs, ve, ConnectionString)
		}
		return
	}
	switch q := b[vs]; q {
	case '"', '\'', '{':
		if q == '{' {
			q = '}'
		}
		vs++
		ve = vs
		for ve < limit && b[ve] != q && b[ve] != '\n' && b[ve] != '\\' {
			ve++
		}
	default:
		ve = vs
		if !sas && vs >= sc.kvFrom && vs <= sc.kvEnd {
			// The previous plain scan saw no terminator in [kvFrom, kvEnd).
			ve = min(sc.kvEnd, limit)
			if ve == sc.kvEnd && sc.kvTerm {
				break
			}
		}
	scan:
		for ve < limit {
			switch c := b[ve]; c {
			case ';', ' ', '\t', '\r', '\n', '"', '\'', '`', '<', '>', ',', ')', '\\':
				break scan
			case '&':
				if !sas {
					break scan
				}
			}
			ve++
		}
		if !sas {
			sc.kvFrom, sc.kvEnd, sc.kvTerm = vs, ve, ve < limit
		}
	}
	v := b[vs:ve]
	if isMaskedForm(v) || pwd && (v[0] == '/' || v[0] == '~') {
		return
	}
	sc.emit(vs, ve, ConnectionString)
}

// sas emits the value of a sig= parameter at i when it looks like a
// signature (URL-encoded base64, 20+ characters) and the same query also
// has an sv= or se= parameter.
func (sc *scanner) sas(i int) {
	b := sc.b
	n := len(b)
	vs := i + 1
	ve := vs
	maxSig := min(512, sc.lim.span)
	for ve < n && ve-vs < maxSig && isSigChar(b[ve]) {
		ve++
	}
	if ve-vs < 20 || ve-vs >= maxSig || isMaskedForm(b[vs:ve]) {
		return
	}
	// The query: URL characters around the parameter, within ctx bytes.
	qs := i - 3
	for qs > 0 && i-qs < sc.lim.ctx && isQueryChar(b[qs-1]) {
		qs--
	}
	qe := ve
	for qe < n && qe-ve < sc.lim.ctx && isQueryChar(b[qe]) {
		qe++
	}
	if !hasParam(b[qs:qe], "sv=") && !hasParam(b[qs:qe], "se=") {
		return
	}
	sc.emit(vs, ve, SASToken)
}

func isSigChar(c byte) bool { return isB64(c) || c == '%' || c == '=' || c == '-' || c == '_' }

func isQueryChar(c byte) bool {
	return c > ' ' && c < 0x7f && c != '"' && c != '\'' && c != '<' && c != '>' && c != '\\' && c != '`'
}

// hasParam reports whether q has p at its start or after '?', '&' or ';'.
func hasParam(q []byte, p string) bool {
	for off := 0; ; {
		k := bytes.Index(q[off:], []byte(p))
		if k < 0 {
			return false
		}
		k += off
		if k == 0 || q[k-1] == '?' || q[k-1] == '&' || q[k-1] == ';' {
			return true
		}
		off = k + 1
	}
}

// azureKey handles "==" at i: an Azure storage account key is 86 base64
// characters and "==" (64 bytes, so the last character before the padding
// is one of A Q g w). Near "AccountKey" that is enough; a standalone one
// must also mix upper case, lower case and digits and must not be a
// sha512- integrity hash.
func (sc *scanner) azureKey(i int) {
	b := sc.b
	n := len(b)
	if i+2 < n && (isB64(b[i+2]) || b[i+2] == '=' || b[i+2] == '-' || b[i+2] == '_') {
		return
	}
	s := i
	for s > 0 && i-s <= 86 && isB64(b[s-1]) {
		s--
	}
	if i-s != 86 || s > 0 && (b[s-1] == '-' && !keyContext(b, s, sc.lim.ctx) || b[s-1] == '_') {
		return
	}
	switch b[i-1] {
	case 'A', 'Q', 'g', 'w':
	default:
		return
	}
	if !keyContext(b, s, sc.lim.ctx) {
		var up, lo, dg bool
		for _, c := range b[s:i] {
			up = up || isUpper(c)
			lo = lo || isLower(c)
			dg = dg || isDigit(c)
		}
		if !up || !lo || !dg {
			return
		}
		if w := b[max(0, s-8):s]; containsFold(w, "sha512") {
			return
		}
	}
	sc.emit(s, i+2, AzureStorageKey)
}

// keyContext reports "AccountKey" (or account_key / storagekey) within the
// 64 bytes before s.
func keyContext(b []byte, s, ctx int) bool {
	w := b[max(0, s-min(64, ctx)):s]
	return containsFold(w, "accountkey") || containsFold(w, "account_key") ||
		containsFold(w, "account-key") || containsFold(w, "storagekey") || containsFold(w, "storage_key")
}

// ---- '_': GitHub tokens ----

// github handles '_' at i: ghp_/gho_/ghu_/ghs_/ghr_ followed by 36
// alphanumerics, or github_pat_ followed by 22 alphanumerics, '_' and 59
// alphanumerics.
func (sc *scanner) github(i int) {
	b := sc.b
	n := len(b)
	if i >= 3 && b[i-3] == 'g' && b[i-2] == 'h' {
		switch b[i-1] {
		case 'p', 'o', 'u', 's', 'r':
		default:
			return
		}
		s := i - 3
		if wordBefore(b, s) || s > 0 && b[s-1] == '-' {
			return
		}
		e := i + 1 + 36
		if e > n || !allAlnum(b[i+1:e]) || e < n && isWord(b[e]) && !escapedAt(b, e) {
			return
		}
		sc.emit(s, e, GitHubToken)
		return
	}
	if i >= 6 && string(b[i-6:i]) == "github" && hasPrefix(b[i+1:], "pat_") {
		s := i - 6
		if wordBefore(b, s) || s > 0 && b[s-1] == '-' {
			return
		}
		p := i + 5
		e := p + 22 + 1 + 59
		if e > n || !allAlnum(b[p:p+22]) || b[p+22] != '_' || !allAlnum(b[p+23:e]) || e < n && isWord(b[e]) && !escapedAt(b, e) {
			return
		}
		sc.emit(s, e, GitHubToken)
	}
}

func allAlnum(b []byte) bool {
	for _, c := range b {
		if !isAlnum(c) {
			return false
		}
	}
	return true
}

// ---- '-': PEM private keys, OpenAI keys ----

func (sc *scanner) dash(i int) {
	b := sc.b
	if i+1 < len(b) && b[i+1] == '-' {
		if sc.set.has(PrivateKey) && hasPrefix(b[i:], "-----BEGIN ") && (i == 0 || b[i-1] != '-') {
			sc.pem(i)
		}
		return
	}
	if sc.set.has(OpenAIKey) && i >= 2 && b[i-1] == 'k' && b[i-2] == 's' {
		sc.openai(i - 2)
	}
}

// pem emits a "-----BEGIN … PRIVATE KEY-----" block through its END line.
// A block without an END line (truncated) is masked through its body. The
// body may contain JSON escapes (\n) and RFC 1421 headers; it must hold at
// least 40 base64 characters, so a masked block is not found again.
func (sc *scanner) pem(i int) {
	b := sc.b
	n := len(b)
	lab := i + len("-----BEGIN ")
	k := lab
	for k < n && k-lab < 64 && (isUpper(b[k]) || isDigit(b[k]) || b[k] == ' ') {
		k++
	}
	label := b[lab:k]
	if !hasPrefix(b[k:], "-----") || !(bytes.HasSuffix(label, []byte("PRIVATE KEY")) || bytes.HasSuffix(label, []byte("PRIVATE KEY BLOCK"))) {
		return
	}
	limit := min(n, i+sc.lim.span)
	p := k + 5
	nb64 := 0
	for p < limit {
		c := b[p]
		if c == '-' && hasPrefix(b[p:], "-----") {
			break
		}
		switch {
		case isB64(c) || c == '=':
			nb64++
		case isSpace(c), c == '\\', c == ':', c == ',', c == '-', c == '.':
		default:
			goto body
		}
		p++
	}
body:
	if nb64 < 40 {
		return
	}
	end := p
	if p < limit && hasPrefix(b[p:], "-----END ") {
		q := p + len("-----END ")
		for q < limit && q-p < 80 && (isUpper(b[q]) || isDigit(b[q]) || b[q] == ' ') {
			q++
		}
		if q+5 <= limit && hasPrefix(b[q:], "-----") {
			end = q + 5
		}
	}
	if end == p {
		// Truncated: end at the last body character, never on a lone
		// backslash (it might escape a quote that follows).
		for end > k+5 && (isSpace(b[end-1]) || b[end-1] == '\\') {
			end--
		}
	}
	sc.emit(i, end, PrivateKey)
}

// openai emits sk-… keys at s: "sk-" then 32–256 characters of
// [A-Za-z0-9_-] mixing upper case, lower case and digits (classic keys are
// 48 alphanumerics; project, service-account and admin keys carry a
// "proj-" / "svcacct-" / "admin-" segment).
func (sc *scanner) openai(s int) {
	b := sc.b
	n := len(b)
	if s > 0 && (isB64URL(b[s-1]) && !escapedAt(b, s-1)) {
		return
	}
	p := s + 3
	e := p
	maxBody := min(256, sc.lim.span-3)
	for e < n && e-p <= maxBody && isB64URL(b[e]) {
		e++
	}
	if e-p < 32 || e-p > maxBody {
		return
	}
	var up, lo, dg bool
	for _, c := range b[p:e] {
		up = up || isUpper(c)
		lo = lo || isLower(c)
		dg = dg || isDigit(c)
	}
	if !up || !lo || !dg {
		return
	}
	sc.emit(s, e, OpenAIKey)
}

// ---- 'J': JWTs ----

// jwt handles the J of "eyJ" at i: header.payload.signature (or the five
// parts of a JWE) in base64url, the header decoding to a JSON object with
// an "alg" member. A JWT whose header has "alg":"EdDSA" and a "kid" and
// whose payload has "aud":"weir" is a weir token.
func (sc *scanner) jwt(i int) {
	b := sc.b
	n := len(b)
	if i < 2 || b[i-1] != 'y' || b[i-2] != 'e' {
		return
	}
	s := i - 2
	if s < sc.jwtSkip || s > 0 && (b[s-1] == '.' || isB64URL(b[s-1]) && !escapedAt(b, s-1)) {
		return
	}
	limit := min(n, s+sc.lim.span)
	p1 := part(b, s, limit)
	if p1 >= limit || b[p1] != '.' {
		if p1 < limit {
			sc.jwtSkip = p1
		}
		return
	}
	if p1-s < 16 || p1-s > 2048 {
		return
	}
	var hbuf [1536]byte
	hn, err := base64.RawURLEncoding.Decode(hbuf[:], b[s:p1])
	if err != nil {
		return
	}
	hdr := trimSpace(hbuf[:hn])
	if len(hdr) < 2 || hdr[0] != '{' || hdr[len(hdr)-1] != '}' || !bytes.Contains(hdr, []byte(`"alg"`)) {
		return
	}
	p2 := part(b, p1+1, limit)
	var end int
	switch {
	case p2 == p1+1:
		return // empty payload
	case p2 >= limit:
		if limit == n {
			return // two parts only
		}
		end = limit // longer than the span limit: mask what fits
	case b[p2] != '.':
		return
	default:
		end = part(b, p2+1, limit)
		// JWE: two more parts.
		if end+1 < limit && b[end] == '.' && isB64URL(b[end+1]) {
			if e4 := part(b, end+1, limit); e4+1 < limit && b[e4] == '.' {
				end = part(b, e4+1, limit)
			}
		}
	}
	d := JWT
	if sc.set.has(WeirToken) && isWeirToken(hdr, b[p1+1:p2]) {
		d = WeirToken
	} else if !sc.set.has(JWT) {
		return
	}
	sc.emit(s, end, d)
}

// part returns the end of the base64url run starting at p (at most limit).
func part(b []byte, p, limit int) int {
	for p < limit && isB64URL(b[p]) {
		p++
	}
	return p
}

func isWeirToken(hdr, payload []byte) bool {
	if !bytes.Contains(hdr, []byte("EdDSA")) || !bytes.Contains(hdr, []byte(`"kid"`)) {
		return false
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if json.Unmarshal(bytes.Clone(hdr), &h) != nil || h.Alg != "EdDSA" || h.Kid == "" {
		return false
	}
	p := make([]byte, base64.RawURLEncoding.DecodedLen(len(payload)))
	pn, err := base64.RawURLEncoding.Decode(p, payload)
	if err != nil {
		return false
	}
	var c struct {
		Aud json.RawMessage `json:"aud"`
	}
	if json.Unmarshal(p[:pn], &c) != nil {
		return false
	}
	var one string
	if json.Unmarshal(c.Aud, &one) == nil {
		return one == "weir"
	}
	var many []string
	if json.Unmarshal(c.Aud, &many) == nil {
		for _, a := range many {
			if a == "weir" {
				return true
			}
		}
	}
	return false
}

// ---- 'I': AWS access key IDs ----

// aws handles the I of AKIA/ASIA at i: the prefix and 16 upper-case
// alphanumerics, as a whole word.
func (sc *scanner) aws(i int) {
	b := sc.b
	n := len(b)
	if i < 2 || i+1 >= n || b[i-2] != 'A' || b[i-1] != 'K' && b[i-1] != 'S' || b[i+1] != 'A' {
		return
	}
	s := i - 2
	if s > 0 && isAlnum(b[s-1]) && !escapedAt(b, s-1) {
		return
	}
	e := s + 20
	if e > n {
		return
	}
	for _, c := range b[s+4 : e] {
		if !isUpper(c) && !isDigit(c) {
			return
		}
	}
	if e < n && isAlnum(b[e]) {
		return
	}
	sc.emit(s, e, AWSAccessKey)
}
