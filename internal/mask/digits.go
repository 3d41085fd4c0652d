package mask

// Digit-triggered detectors: payment cards, phone numbers, IBANs.
//
// The scanner calls digits at the first digit of every digit group (a
// maximal run of digits). Candidates are defined locally: a card may start
// at any group of a separated run, a phone number only where a run starts,
// an IBAN at two letters right before a group.

// digits handles the group starting at i and returns where scanning
// resumes (the end of the group).
func (sc *scanner) digits(i int) int {
	b := sc.b
	n := len(b)
	j := i + 1
	for j < n && isDigit(b[j]) {
		j++
	}
	if wordBefore(b, i) {
		// Digits inside a word (abc123, x4111…); or an IBAN's check digits.
		if sc.set.has(IBAN) && i >= 2 && isLetter(b[i-1]) && isLetter(b[i-2]) && !wordBefore(b, i-2) {
			sc.iban(i - 2)
		}
		return j
	}
	// Every card or phone number has at least 8 digits (E.164 with '+')
	// or 9; count the run's digits only as far as needed.
	need := 9
	if i > 0 && b[i-1] == '+' {
		need = 8
	}
	if j-i < need && runDigits(b, j, j-i, need) < need {
		return j
	}
	if sc.set.has(CreditCard) {
		sc.card(i, j)
	}
	if sc.set.has(Phone) {
		sc.phone(i, j)
	}
	return j
}

// runDigits adds to have the digits of the groups that follow a group
// ending at e after short separators, stopping once it reaches need.
func runDigits(b []byte, e, have, need int) int {
	n := len(b)
	for have < need {
		k := e
		for k < n && k-e < 3 {
			switch b[k] {
			case ' ', '-', '.', '(', ')':
				k++
				continue
			}
			break
		}
		if k == e || k >= n || !isDigit(b[k]) {
			return have
		}
		e = k + 1
		for e < n && isDigit(b[e]) {
			e++
		}
		have += e - k
	}
	return have
}

// ---- payment cards ----

// card emits the card numbers that start at the group [i, j): a single
// group of 13–19 digits, or consecutive groups of 3–8 digits joined by the
// same single separator (space or dash). Every valid window is emitted;
// the longest wins.
func (sc *scanner) card(i, j int) {
	b := sc.b
	n := len(b)
	if !cardStartOK(b, i, j) {
		return
	}
	var d [19]byte
	nd := 0
	var sep byte
	gs, ge := i, j
	groups := 0
	sized := true
	for {
		gl := ge - gs
		if nd+gl > 19 {
			return
		}
		copy(d[nd:], b[gs:ge])
		nd += gl
		groups++
		if gl < 3 || gl > 8 {
			sized = false
		}
		if nd >= 13 && (groups == 1 || sized) && cardEndOK(b, ge, sep) && luhn(d[:nd]) && iinOK(d[:nd]) {
			sc.emit(i, ge, CreditCard) // keep going: a longer window wins
		}
		if !sized || ge+1 >= n || !isDigit(b[ge+1]) {
			return
		}
		c := b[ge]
		if c != ' ' && c != '-' || sep != 0 && c != sep {
			return
		}
		sep = c
		gs = ge + 1
		ge = gs + 1
		for ge < n && isDigit(b[ge]) {
			ge++
		}
	}
}

// cardStartOK rejects digit groups [i, j) that continue a decimal number,
// a thousands-grouped number or an identifier (0.4111…, 1,411 1111…,
// ORD-4111…). A long group after a comma is a new field (CSV: amount,card).
func cardStartOK(b []byte, i, j int) bool {
	if i == 0 {
		return true
	}
	c := b[i-1]
	if c == '$' || c == '+' {
		return false
	}
	if i >= 2 {
		c2 := b[i-2]
		switch c {
		case '.':
			if isAlnum(c2) || c2 == '_' {
				return false // a decimal fraction or a dotted name
			}
		case ',':
			if isDigit(c2) && j-i == 3 {
				return false
			}
		case '-', '/', ':':
			if isLetter(c2) || c2 == '_' {
				return false
			}
		}
	}
	return true
}

// cardEndOK checks what follows a card candidate ending at e.
func cardEndOK(b []byte, e int, sep byte) bool {
	if e >= len(b) {
		return true
	}
	c := b[e]
	if isWord(c) {
		return false
	}
	if e+1 < len(b) {
		c1 := b[e+1]
		switch c {
		case '.', ',':
			if isDigit(c1) {
				return false // 4111111111111111.5
			}
		case '-':
			if isLetter(c1) || c1 == '_' || sep == 0 && isDigit(c1) {
				return false // identifier, or an unseparated run continued by dashes
			}
		case ' ':
			if sep == 0 && isDigit(c1) {
				return false // 16 plain digits followed by more numbers: a list, not a card
			}
		}
	}
	return true
}

func luhn(d []byte) bool {
	sum := 0
	dbl := false
	for k := len(d) - 1; k >= 0; k-- {
		v := int(d[k] - '0')
		if dbl {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		dbl = !dbl
	}
	return sum%10 == 0
}

// iinOK checks the issuer range and the lengths that range issues.
func iinOK(d []byte) bool {
	n := len(d)
	p2 := int(d[0]-'0')*10 + int(d[1]-'0')
	p3 := p2*10 + int(d[2]-'0')
	p4 := p3*10 + int(d[3]-'0')
	switch {
	case d[0] == '4': // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p2 == 34, p2 == 37: // American Express
		return n == 15
	case p4 == 6011, p2 == 65, p3 >= 644 && p3 <= 649: // Discover
		return n >= 16 && n <= 19
	case p4 >= 3528 && p4 <= 3589: // JCB
		return n >= 16 && n <= 19
	case p3 >= 300 && p3 <= 305, p2 == 36, p2 == 38: // Diners Club
		return n >= 14 && n <= 19
	case p2 == 62: // UnionPay
		return n >= 16 && n <= 19
	}
	return false
}

// ---- phone numbers ----

// Gap kinds between phone digit groups.
const (
	gSpace = 1 << iota
	gDash
	gDot
	gOpen
	gClose
)

// phone emits a phone number whose first digit group starts at i, when
// the whole run of groups is one of:
//   - E.164: '+', 8–15 digits, first digit not 0;
//   - NANP: 3-3-4 digits (area code optionally in parentheses), optionally
//     preceded by a 1 group, area code and exchange starting 2–9;
//   - a national number with a trunk prefix: 0 then a non-zero digit, 9–12
//     digits in at least two groups (dot-separated only as 2-digit pairs).
//
// Dates (4-2-2, 2-2-4), times, versions, IP addresses and numbers that are
// part of identifiers do not match these shapes or fail the boundary
// checks.
func (sc *scanner) phone(i, j int) {
	b := sc.b
	n := len(b)
	p := i
	plus, paren := false, false
	if i > 0 {
		switch b[i-1] {
		case '+':
			plus, p = true, i-1
		case '(':
			paren, p = true, i-1
		}
	}
	if !phoneStartOK(b, p) {
		return
	}
	var sizes [16]int8
	var gaps [16]uint8 // gaps[k] is the gap after group k
	ng, nd := 0, 0
	open := paren
	gs, ge := i, j
	for {
		nd += ge - gs
		if nd > 15 || ng == len(sizes) {
			return
		}
		sizes[ng] = int8(ge - gs)
		ng++
		// Parse a gap of up to three separator bytes.
		k := ge
		var g uint8
		o := open
		marks, spaces := 0, 0
		ok := true
	gap:
		for k < n && k-ge < 3 {
			switch b[k] {
			case ' ':
				g |= gSpace
				spaces++
			case '-':
				g |= gDash
				marks++
			case '.':
				g |= gDot
				marks++
			case '(':
				ok = ok && !o
				o = true
				g |= gOpen
			case ')':
				ok = ok && o
				o = false
				g |= gClose
			default:
				break gap
			}
			k++
		}
		if k == ge || k >= n || !isDigit(b[k]) {
			break // the run ends at ge
		}
		if !ok || marks > 1 || spaces > 2 || g&gDot != 0 && g&gSpace != 0 {
			return
		}
		open = o
		gaps[ng-1] = g
		gs = k
		ge = k + 1
		for ge < n && isDigit(b[ge]) {
			ge++
		}
	}
	if open {
		return // an unclosed parenthesis
	}
	if !phoneEndOK(b, ge, plus) {
		return
	}
	sz := sizes[:ng]
	gp := gaps[:ng-1]
	d0 := b[i]
	ok := false
	switch {
	case plus:
		ok = nd >= 8 && d0 != '0' && !paren
	case nd == 10 && ng == 3 && sz[0] == 3 && sz[1] == 3 && sz[2] == 4:
		ok = b[i] >= '2' && b[gapEnd(b, i+3)] >= '2' && parensOnlyFirst(gp, paren)
	case nd == 11 && ng == 4 && d0 == '1' && sz[0] == 1 && sz[1] == 3 && sz[2] == 3 && sz[3] == 4:
		a := gapEnd(b, i+1)
		ok = !paren && b[a] >= '2' && b[gapEnd(b, a+3)] >= '2'
	case d0 == '0' && nd >= 9 && nd <= 12 && ng >= 2:
		ok = i+1 < n && isDigit(b[i+1]) && b[i+1] != '0' && !paren && trunkShapeOK(sz, gp)
	}
	if !ok || dateLike(sz, gp) {
		return
	}
	sc.emit(p, ge, Phone)
}

// gapEnd returns the index of the first digit at or after k.
func gapEnd(b []byte, k int) int {
	for k < len(b) && !isDigit(b[k]) {
		k++
	}
	if k >= len(b) {
		return len(b) - 1
	}
	return k
}

// parensOnlyFirst: parentheses may only surround the first (area code)
// group.
func parensOnlyFirst(gp []uint8, paren bool) bool {
	for k, g := range gp {
		if g&(gOpen|gClose) != 0 && !(k == 0 && paren && g&gClose != 0 && g&gOpen == 0) {
			return false
		}
	}
	return !paren || gp[0]&gClose != 0
}

// trunkShapeOK restricts dot-separated trunk numbers to pairs
// (01.23.45.67.89) and forbids parentheses except around a leading group.
func trunkShapeOK(sz []int8, gp []uint8) bool {
	dots := false
	for k, g := range gp {
		if g&gDot != 0 {
			dots = true
		}
		if g&(gOpen|gClose) != 0 && k != 0 {
			return false
		}
	}
	if dots {
		for _, s := range sz {
			if s != 2 {
				return false
			}
		}
	}
	return true
}

// dateLike reports 4-2-2 or 2-2-4 groups joined by the same dash or dot.
func dateLike(sz []int8, gp []uint8) bool {
	for k := 0; k+2 < len(sz); k++ {
		a, b2, c := sz[k], sz[k+1], sz[k+2]
		if (a == 4 && b2 == 2 && c == 2 || a == 2 && b2 == 2 && c == 4) &&
			gp[k] == gp[k+1] && (gp[k] == gDash || gp[k] == gDot) {
			return true
		}
	}
	return false
}

// phoneStartOK rejects numbers that continue something else: an
// identifier (ORD-2024…), a decimal or version (1.555…), a time (10:55…),
// an amount ($, #) or a longer run of numbers.
func phoneStartOK(b []byte, p int) bool {
	if p == 0 {
		return true
	}
	if wordBefore(b, p) {
		return false
	}
	switch b[p-1] {
	case '#', '$', '%', '*', '^', '~', '+':
		return false
	case '-', '.', '/', ':':
		return p < 2 || !isAlnum(b[p-2])
	case ',':
		// After a word a comma separates fields (CSV: name,+44 20…); after
		// a digit it may group thousands (1,555,123).
		return p < 2 || !isDigit(b[p-2]) || b[p] == '+'
	case ' ':
		return p < 2 || !isDigit(b[p-2])
	}
	return true
}

// phoneEndOK rejects numbers that continue into something else. An
// international number (plus) followed by a comma ends its field even when
// a number follows (CSV).
func phoneEndOK(b []byte, e int, plus bool) bool {
	if e >= len(b) {
		return true
	}
	c := b[e]
	if isWord(c) && !escapedAt(b, e) || c == '%' {
		return false
	}
	if e+1 < len(b) && isDigit(b[e+1]) {
		switch c {
		case ',':
			return plus
		case '.', ':', '/', '-', ' ':
			return false
		}
	}
	return true
}

// ---- IBAN ----

// ibanLengths maps a country code to its IBAN length (SWIFT IBAN
// registry).
var ibanLengths = map[[2]byte]uint8{
	{'A', 'D'}: 24, {'A', 'E'}: 23, {'A', 'L'}: 28, {'A', 'T'}: 20, {'A', 'Z'}: 28,
	{'B', 'A'}: 20, {'B', 'E'}: 16, {'B', 'G'}: 22, {'B', 'H'}: 22, {'B', 'I'}: 27,
	{'B', 'R'}: 29, {'B', 'Y'}: 28, {'C', 'H'}: 21, {'C', 'R'}: 22, {'C', 'Y'}: 28,
	{'C', 'Z'}: 24, {'D', 'E'}: 22, {'D', 'J'}: 27, {'D', 'K'}: 18, {'D', 'O'}: 28,
	{'E', 'E'}: 20, {'E', 'G'}: 29, {'E', 'S'}: 24, {'F', 'I'}: 18, {'F', 'K'}: 18,
	{'F', 'O'}: 18, {'F', 'R'}: 27, {'G', 'B'}: 22, {'G', 'E'}: 22, {'G', 'I'}: 23,
	{'G', 'L'}: 18, {'G', 'R'}: 27, {'G', 'T'}: 28, {'H', 'N'}: 28, {'H', 'R'}: 21,
	{'H', 'U'}: 28, {'I', 'E'}: 22, {'I', 'L'}: 23, {'I', 'Q'}: 23, {'I', 'S'}: 26,
	{'I', 'T'}: 27, {'J', 'O'}: 30, {'K', 'W'}: 30, {'K', 'Z'}: 20, {'L', 'B'}: 28,
	{'L', 'C'}: 32, {'L', 'I'}: 21, {'L', 'T'}: 20, {'L', 'U'}: 20, {'L', 'V'}: 21,
	{'L', 'Y'}: 25, {'M', 'C'}: 27, {'M', 'D'}: 24, {'M', 'E'}: 22, {'M', 'K'}: 19,
	{'M', 'N'}: 20, {'M', 'R'}: 27, {'M', 'T'}: 31, {'M', 'U'}: 30, {'N', 'I'}: 28,
	{'N', 'L'}: 18, {'N', 'O'}: 15, {'O', 'M'}: 23, {'P', 'K'}: 24, {'P', 'L'}: 28,
	{'P', 'S'}: 29, {'P', 'T'}: 25, {'Q', 'A'}: 29, {'R', 'O'}: 24, {'R', 'S'}: 22,
	{'R', 'U'}: 33, {'S', 'A'}: 24, {'S', 'C'}: 31, {'S', 'D'}: 18, {'S', 'E'}: 24,
	{'S', 'I'}: 19, {'S', 'K'}: 24, {'S', 'M'}: 27, {'S', 'O'}: 23, {'S', 'T'}: 25,
	{'S', 'V'}: 28, {'T', 'L'}: 23, {'T', 'N'}: 24, {'T', 'R'}: 26, {'U', 'A'}: 29,
	{'V', 'A'}: 22, {'V', 'G'}: 24, {'X', 'K'}: 20, {'Y', 'E'}: 30,
}

func upper(c byte) byte {
	if isLower(c) {
		return c - ('a' - 'A')
	}
	return c
}

// iban emits an IBAN starting at s (two letters, then the check digits), in
// compact form or grouped by four with single spaces.
func (sc *scanner) iban(s int) {
	b := sc.b
	n := len(b)
	L := int(ibanLengths[[2]byte{upper(b[s]), upper(b[s+1])}])
	if L == 0 || s+4 > n || !isDigit(b[s+2]) || !isDigit(b[s+3]) {
		return
	}
	var buf [34]byte
	k, pos := 0, s
	spaced := false
	for k < L {
		if k > 0 && k%4 == 0 {
			if pos < n && b[pos] == ' ' {
				if k == 4 {
					spaced = true
				} else if !spaced {
					return
				}
				pos++
			} else if spaced {
				return
			}
		}
		if pos >= n || !isAlnum(b[pos]) {
			return
		}
		buf[k] = upper(b[pos])
		k++
		pos++
	}
	if pos < n && isWord(b[pos]) && !escapedAt(b, pos) {
		return
	}
	if !ibanValid(buf[:L]) {
		return
	}
	sc.emit(s, pos, IBAN)
}

// ibanValid computes the mod-97 check over the rearranged IBAN.
func ibanValid(v []byte) bool {
	rem := 0
	add := func(c byte) {
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A'+10)) % 97
		}
	}
	for _, c := range v[4:] {
		add(c)
	}
	for _, c := range v[:4] {
		add(c)
	}
	return rem == 1
}
