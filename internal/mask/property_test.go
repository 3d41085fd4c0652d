package mask

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// randCard returns a Luhn-valid card number in a random issuer range,
// unformatted.
func randCard(r *rand.Rand) string {
	type brand struct {
		prefix string
		n      int
	}
	brands := []brand{
		{"4", 16}, {"4", 13}, {"4", 19}, {strconv.Itoa(51 + r.IntN(5)), 16}, {strconv.Itoa(2221 + r.IntN(500)), 16},
		{"34", 15}, {"37", 15}, {"6011", 16 + r.IntN(4)}, {"65", 16}, {strconv.Itoa(644 + r.IntN(6)), 16},
		{strconv.Itoa(3528 + r.IntN(62)), 16 + r.IntN(4)}, {strconv.Itoa(300 + r.IntN(6)), 14 + r.IntN(6)},
		{"36", 14}, {"38", 16}, {"62", 16 + r.IntN(4)},
	}
	b := brands[r.IntN(len(brands))]
	d := []byte(b.prefix)
	for len(d) < b.n-1 {
		d = append(d, byte('0'+r.IntN(10)))
	}
	for c := byte('0'); c <= '9'; c++ {
		if luhn(append(d, c)) {
			return string(append(d, c))
		}
	}
	panic("unreachable")
}

func formatCard(r *rand.Rand, c string) string {
	switch r.IntN(3) {
	case 0:
		return c
	default:
		sep := " "
		if r.IntN(2) == 0 {
			sep = "-"
		}
		var parts []string
		for len(c) > 4 {
			parts = append(parts, c[:4])
			c = c[4:]
		}
		if len(c) < 3 && len(parts) > 0 { // keep groups 3–8 long
			parts[len(parts)-1] += c
		} else {
			parts = append(parts, c)
		}
		return strings.Join(parts, sep)
	}
}

func randEmail(r *rand.Rand) (local, domain, tld string) {
	const lc = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	local = randFrom(r, lc, 1) + randFrom(r, lc+"._%+-", r.IntN(20))
	local = strings.TrimRight(local, ".")
	for strings.Contains(local, "..") {
		local = strings.ReplaceAll(local, "..", ".")
	}
	labels := 1 + r.IntN(3)
	var ds []string
	for range labels {
		ds = append(ds, randFrom(r, "abcdefghijklmnopqrstuvwxyz", 1)+randFrom(r, "abcdefghijklmnopqrstuvwxyz0123456789-", r.IntN(12))+randFrom(r, "abcdefghijklmnopqrstuvwxyz0123456789", 1))
	}
	tld = randFrom(r, "abcdefghijklmnopqrstuvwxyz", 2+r.IntN(5))
	return local, strings.Join(ds, "."), tld
}

func digitsOf(s string) string {
	var sb strings.Builder
	for _, c := range []byte(s) {
		if isDigit(c) {
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// TestPropertyPartial: the partial form never reveals more than the last
// four digits of a card, or more than the first character of the local
// part, the first character of the domain and the TLD of an address, in
// free text or as a column value.
func TestPropertyPartial(t *testing.T) {
	m := newMasker(t, FormatPartial)
	r := testRand(77)
	for range 3000 {
		card := randCard(r)
		in := formatCard(r, card)
		for _, out := range []string{
			first(m.MaskValue(in)),
			first(m.MaskString("paid with " + in + " today")),
		} {
			if got := digitsOf(out); got != card[len(card)-4:] {
				t.Fatalf("card %q: output %q reveals digits %q", in, out, got)
			}
		}

		local, domain, tld := randEmail(r)
		email := local + "@" + domain + "." + tld
		want := local[:1] + "****@" + domain[:1] + "*****." + tld
		if out, _ := m.MaskValue(email); out != want {
			t.Fatalf("MaskValue(%q) = %q, want %q", email, out, want)
		}
		if out, _ := m.MaskString("mail <" + email + "> now"); out != "mail <"+want+"> now" {
			t.Fatalf("MaskString(%q) = %q, want %q", email, out, want)
		}
	}
}

func first[A, B any](a A, _ B) A { return a }

// TestPropertyHash: hash output never contains the input, has the fixed
// shape, and is stable.
func TestPropertyHash(t *testing.T) {
	m := newMasker(t, FormatHash)
	r := testRand(78)
	for range 3000 {
		var v string
		switch r.IntN(3) {
		case 0:
			v = formatCard(r, randCard(r))
		case 1:
			l, d, tld := randEmail(r)
			v = l + "@" + d + "." + tld
		default:
			v = randFrom(r, alnum+" .-_@", 4+r.IntN(30))
		}
		out, _ := m.MaskValue(v)
		if strings.Contains(out, v) || len(out) != len("[hash:]")+16 || !strings.HasPrefix(out, "[hash:") {
			t.Fatalf("MaskValue(%q) = %q", v, out)
		}
		for _, c := range out[6 : len(out)-1] {
			if c < 'a' || c > 'p' {
				t.Fatalf("hash %q has %q", out, c)
			}
		}
		if again, _ := m.MaskValue(v); again != out {
			t.Fatalf("unstable hash for %q", v)
		}
		if txt, c := m.MaskString("x " + v + " y"); !c.IsZero() && strings.Contains(txt, v) {
			t.Fatalf("MaskString(%q) = %q", v, txt)
		}
	}
}

// TestPropertyIBANPhone: IBAN partial keeps only the country and the last
// four characters; phone partial only the last two digits.
func TestPropertyIBANPhone(t *testing.T) {
	m := newMasker(t, FormatPartial)
	r := testRand(79)
	for range 2000 {
		// A random valid DE IBAN.
		bban := randFrom(r, "0123456789", 18)
		var iban string
		for ck := 2; ck <= 98; ck++ {
			c := "DE" + strconv.Itoa(ck/10) + strconv.Itoa(ck%10) + bban
			if ibanValid([]byte(c)) {
				iban = c
				break
			}
		}
		out, _ := m.MaskValue(iban)
		if kept := strings.Map(func(r rune) rune {
			if r == '*' || r == ' ' {
				return -1
			}
			return r
		}, out); kept != "DE"+iban[len(iban)-4:] {
			t.Fatalf("IBAN %q -> %q reveals %q", iban, out, kept)
		}
		ph := "+" + strconv.Itoa(1+r.IntN(98)) + " " + randFrom(r, "123456789", 3) + " " + randFrom(r, "0123456789", 6)
		out, _ = m.MaskString("call " + ph)
		if got := digitsOf(out); got != digitsOf(ph)[len(digitsOf(ph))-2:] {
			t.Fatalf("phone %q -> %q reveals %q", ph, out, got)
		}
	}
}
