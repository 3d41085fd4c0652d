package mask

import (
	"strings"
	"testing"
	"time"
)

// TestNoQuadraticBlowup masks 1 MiB of each pathological repetition of a
// trigger pattern; detectors must stay linear (the bound is generous so
// the test is not flaky on slow machines).
func TestNoQuadraticBlowup(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	m := newMasker(t, FormatPartial)
	pats := map[string]string{
		"at":       "a@",
		"atdom":    "@a.b",
		"local":    strings.Repeat("a", 60) + "@",
		"eyJ":      "eyJ",
		"eyJdot":   "eyJhbGciOiJub25lIn0.",
		"eyJhdr":   "eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.",
		"eqeq":     "A==",
		"b64eq":    strings.Repeat("A", 86) + "==",
		"sig":      "&sig=AAAAAAAAAAAAAAAAAAAAAAAA",
		"pwd":      "Pwd=",
		"pwdx":     "Password=xxxxxxxx",
		"pem":      "-----BEGIN RSA PRIVATE KEY-----AAAA",
		"pembody":  "-----BEGIN RSA PRIVATE KEY-----" + strings.Repeat("A", 100),
		"sk":       "sk-",
		"ghp":      "ghp_",
		"digits":   "1 ",
		"digits2":  "12-",
		"digits3":  "4111 ",
		"plus":     "+1 ",
		"iban":     "DE89 ",
		"url":      "a://b:c@",
		"userinfo": "x:" + strings.Repeat("y", 100) + "@",
		"zw":       "\u200b",
		"comb":     "e\u0301",
		"akia":     "AKIA",
	}
	for name, p := range pats {
		s := strings.Repeat(p, (1<<20)/len(p))
		start := time.Now()
		m.MaskString(s)
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: %v for 1 MiB", name, d)
		} else {
			t.Logf("%s: %v", name, d)
		}
	}
}
