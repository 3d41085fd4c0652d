package blob

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// The SharedKey scheme (learn.microsoft.com/rest/api/storageservices/
// authorize-with-shared-key): an HMAC-SHA256, under the account key, of
// the method, a fixed list of standard headers, the x-ms-* headers and the
// canonicalized resource. weir checks the agent's signature with the key
// derived for its token, then signs the re-serialized request upstream with
// the real account key; both sides use the one stringToSign below.

// headerOrder selects how the x-ms-* headers are sorted. Azure (and the
// Go, .NET and JS SDKs, and Azurite) sort them the way Windows compares
// strings, hyphens ignored at first; the Python SDK (az) sorts them by
// byte. They differ only for names that differ around a hyphen
// (x-ms-blob-type and x-ms-blobfoo), so weir accepts either from an agent
// and signs upstream the Azure way.
type headerOrder int

const (
	orderAzure headerOrder = iota
	orderBytes
)

// stringToSign builds the SharedKey string for a request whose escaped
// path (as sent on the wire) and raw query are given separately, so the
// agent's request is checked over exactly what it sent.
func stringToSign(method string, h http.Header, account, escapedPath, rawQuery string, order headerOrder) (string, bool) {
	cl := h.Get("Content-Length")
	if cl == "0" {
		cl = ""
	}
	var b strings.Builder
	for _, s := range []string{method, h.Get("Content-Encoding"), h.Get("Content-Language"), cl, h.Get("Content-MD5"), h.Get("Content-Type"),
		h.Get("Date"), h.Get("If-Modified-Since"), h.Get("If-Match"), h.Get("If-None-Match"), h.Get("If-Unmodified-Since"), h.Get("Range")} {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	names := make([]string, 0, 8)
	lower := map[string]string{}
	for k := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-ms-") {
			names = append(names, lk)
			lower[lk] = k
		}
	}
	if order == orderAzure {
		sort.Slice(names, func(i, j int) bool { return azureLess(names[i], names[j]) })
	} else {
		sort.Strings(names)
	}
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(':')
		b.WriteString(strings.Join(h[lower[n]], ","))
		b.WriteByte('\n')
	}
	b.WriteByte('/')
	b.WriteString(account)
	if escapedPath == "" {
		escapedPath = "/"
	}
	b.WriteString(escapedPath)
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", false
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs := q[k]
		sort.Strings(vs)
		b.WriteByte('\n')
		b.WriteString(strings.ToLower(k))
		b.WriteByte(':')
		b.WriteString(strings.Join(vs, ","))
	}
	return b.String(), true
}

// azureLess orders header names as Azure does (Windows string
// comparison, as ported by the SDKs): first by the characters' primary
// weights with hyphens and apostrophes ignored; on a tie, by the hyphens
// and apostrophes alone, with the SDKs' quirk that the side which reaches
// its next one later sorts first.
func azureLess(a, b string) bool { return azureCompare(a, b) < 0 }

func azureCompare(a, b string) int {
	const end = 1
	for level := 0; level < 2; level++ {
		i, j := 0, 0
		for {
			if level == 1 && i != j {
				if i > j {
					return -1
				}
				return 1
			}
			w1, w2 := end, end
			if i < len(a) {
				w1 = weight(level, a[i])
			}
			if j < len(b) {
				w2 = weight(level, b[j])
			}
			switch {
			case w1 == end && w2 == end:
			case w1 == w2:
				i++
				j++
				continue
			case w1 == 0:
				i++
				continue
			case w2 == 0:
				j++
				continue
			case w1 < w2:
				return -1
			default:
				return 1
			}
			break
		}
	}
	return 0
}

// weight is a byte's weight at a comparison level; 0 means ignored.
func weight(level int, c byte) int {
	if level == 1 {
		switch c {
		case '-':
			return 0x8212
		case '\'':
			return 0x8012
		}
		return 0
	}
	switch {
	case c == '-' || c == '\'':
		return 0
	case c == '_':
		return 2
	case c >= '0' && c <= '9':
		return 10 + int(c-'0')
	case c >= 'a' && c <= 'z':
		return 100 + int(c-'a')
	case c >= 'A' && c <= 'Z':
		return 100 + int(c-'A')
	}
	return 200 + int(c)
}

func hmacB64(key []byte, s string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// verifySharedKey reports whether sig is the agent's valid signature of the
// request under key, in either header order.
func verifySharedKey(key []byte, sig, method string, h http.Header, account, escapedPath, rawQuery string) bool {
	want, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(want) != sha256.Size {
		return false
	}
	for _, o := range []headerOrder{orderAzure, orderBytes} {
		s, ok := stringToSign(method, h, account, escapedPath, rawQuery, o)
		if !ok {
			return false
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(s))
		if hmac.Equal(m.Sum(nil), want) {
			return true
		}
	}
	return false
}

// signSharedKey sets the Authorization header of an upstream request.
func signSharedKey(req *http.Request, account string, key []byte) {
	s, _ := stringToSign(req.Method, req.Header, account, req.URL.EscapedPath(), req.URL.RawQuery, orderAzure)
	req.Header.Set("Authorization", "SharedKey "+account+":"+hmacB64(key, s))
}

// DeriveKey is the account key of a weir token's connection string: an
// HMAC of weir's blob secret and the token id, so no key is stored per
// token and a key is worth nothing anywhere but at this weir.
func DeriveKey(secret []byte, tokenID string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("weir blob account key\x00"))
	m.Write([]byte(tokenID))
	return m.Sum(nil)
}
