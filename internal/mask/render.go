package mask

import (
	"bytes"
	"unicode/utf8"
)

// render appends the masked form of the detected value v.
func (m *Masker) render(dst []byte, d Detector, v []byte) []byte {
	switch m.format {
	case FormatHash:
		return m.appendHash(dst, v)
	case FormatRedact, FormatNull:
		dst = append(dst, "[REDACTED:"...)
		dst = append(dst, d.String()...)
		return append(dst, ']')
	}
	return appendPartial(dst, d, v)
}

// appendPartial appends the partial form of a value detected by d. Personal
// data keeps a little (first characters of an address, the last four digits
// of a card, an IBAN's country); secrets keep only their public type prefix.
func appendPartial(dst []byte, d Detector, v []byte) []byte {
	switch d {
	case Email:
		return partialEmail(dst, v)
	case CreditCard:
		return partialCard(dst, v)
	case IBAN:
		return partialIBAN(dst, v)
	case Phone:
		return partialPhone(dst, v)
	case JWT, WeirToken:
		return append(dst, "eyJ****"...)
	case PrivateKey:
		return partialPEM(dst, v)
	case GitHubToken:
		if hasPrefix(v, "github_pat_") {
			return append(dst, "github_pat_****"...)
		}
		dst = append(dst, v[:4]...)
		return append(dst, "****"...)
	case AWSAccessKey:
		dst = append(dst, v[:4]...)
		return append(dst, "****"...)
	case OpenAIKey:
		dst = append(dst, "sk-"...)
		for _, seg := range []string{"proj-", "svcacct-", "admin-"} {
			if hasPrefix(v[3:], seg) {
				dst = append(dst, seg...)
				break
			}
		}
		return append(dst, "****"...)
	}
	return append(dst, "****"...)
}

// partialEmail keeps the first character of the local part and of the
// domain, and the top-level domain: a****@e*****.com.
func partialEmail(dst, v []byte) []byte {
	at := bytes.LastIndexByte(v, '@')
	dot := bytes.LastIndexByte(v, '.')
	if at <= 0 || dot <= at+1 {
		return append(dst, "****"...)
	}
	_, n1 := utf8.DecodeRune(v)
	_, n2 := utf8.DecodeRune(v[at+1:])
	dst = append(dst, v[:n1]...)
	dst = append(dst, "****@"...)
	dst = append(dst, v[at+1:at+1+n2]...)
	dst = append(dst, "*****"...)
	return append(dst, v[dot:]...)
}

// partialCard keeps the last four digits: **** **** **** 4242.
func partialCard(dst, v []byte) []byte {
	var last [4]byte
	k := 4
	for i := len(v) - 1; i >= 0 && k > 0; i-- {
		if isDigit(v[i]) {
			k--
			last[k] = v[i]
		}
	}
	dst = append(dst, "**** **** **** "...)
	return append(dst, last[:]...)
}

// partialIBAN keeps the country code and the last four characters, and
// the input's spacing: DE** **** **** **** **30 00.
func partialIBAN(dst, v []byte) []byte {
	total := 0
	for _, c := range v {
		if isAlnum(c) {
			total++
		}
	}
	k := 0
	for _, c := range v {
		if !isAlnum(c) {
			dst = append(dst, c)
			continue
		}
		if k < 2 || k >= total-4 {
			dst = append(dst, upper(c))
		} else {
			dst = append(dst, '*')
		}
		k++
	}
	return dst
}

// partialPhone keeps the layout and the last two digits:
// +* (***) ***-**67.
func partialPhone(dst, v []byte) []byte {
	digits := 0
	for _, c := range v {
		if isDigit(c) {
			digits++
		}
	}
	k := 0
	for _, c := range v {
		if isDigit(c) {
			k++
			if k <= digits-2 {
				c = '*'
			}
		}
		dst = append(dst, c)
	}
	return dst
}

// partialPEM keeps the BEGIN and END lines:
// -----BEGIN RSA PRIVATE KEY-----****-----END RSA PRIVATE KEY-----.
// No line breaks are inserted (the block may sit inside a JSON string).
func partialPEM(dst, v []byte) []byte {
	h := bytes.Index(v[5:], []byte("-----"))
	if h < 0 {
		return append(dst, "****"...)
	}
	dst = append(dst, v[:h+10]...)
	dst = append(dst, "****"...)
	if f := bytes.LastIndex(v, []byte("-----END ")); f > h+5 {
		dst = append(dst, v[f:]...)
	}
	return dst
}
