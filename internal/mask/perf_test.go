package mask

import (
	"strings"
	"testing"
)

// BenchmarkPathologicalTriggers masks 1 MiB of each pathological
// repetition of a trigger pattern. Detectors must stay linear: compare the
// MB/s here with BenchmarkMaskClean (a quadratic detector shows up as a
// collapse by orders of magnitude). A benchmark, not a test, because unit
// tests carry no timing thresholds.
func BenchmarkPathologicalTriggers(b *testing.B) {
	m := newMasker(b, FormatPartial)
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
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				m.MaskString(s)
			}
		})
	}
}
