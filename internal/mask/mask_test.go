package mask

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNew(t *testing.T) {
	if _, err := New(Config{Detectors: []string{"email", "ssn"}}); err == nil ||
		!strings.Contains(err.Error(), `"ssn"`) || !strings.Contains(err.Error(), "credit_card") {
		t.Errorf("unknown detector: err = %v, want the name and the valid list", err)
	}
	if _, err := New(Config{Format: "scramble"}); err == nil || !strings.Contains(err.Error(), "partial") {
		t.Errorf("unknown format: err = %v", err)
	}
	if _, err := New(Config{Format: FormatHash, HashKey: []byte("short")}); err == nil {
		t.Error("hash with a short key: no error")
	}
	m, err := New(Config{Detectors: []string{"iban", "email"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Format() != FormatPartial {
		t.Errorf("default format = %q", m.Format())
	}
	if got := strings.Join(m.Detectors(), ","); got != "email,iban" {
		t.Errorf("Detectors() = %s", got)
	}
	if len(DetectorNames()) != int(numDetectors) {
		t.Errorf("DetectorNames: %v", DetectorNames())
	}
	for _, n := range DetectorNames() {
		if d, ok := ParseDetector(n); !ok || d.String() != n {
			t.Errorf("ParseDetector(%q) = %v, %v", n, d, ok)
		}
	}
}

type detCase struct {
	name string
	in   string
	det  Detector
	want string // partial output
}

func positiveCases() []detCase {
	key := azureKeyFor(7)
	pemEd := pemEd25519(3)
	pemE := pemEC(4)
	pemR := pemRSALike(5)
	gh := githubClassic("gh"+"p", 9)
	return []detCase{
		// email
		{"email", "mail alice@example.com today", Email, "mail a****@e*****.com today"},
		{"email subdomain", "<bob.smith+tag@mail.corp.example.co.uk>", Email, "<b****@m*****.uk>"},
		{"email json", `{"email":"carol_99@example.org"}`, Email, `{"email":"c****@e*****.org"}`},
		{"email json escape", `"line\ndave@example.net"`, Email, `"line\nd****@e*****.net"`},
		{"email idn", "müller@bücher.de", Email, "m****@b*****.de"},
		{"email sql", `invalid input syntax for type integer: "alice@example.com"`, Email, `invalid input syntax for type integer: "a****@e*****.com"`},
		// phone
		{"phone e164", "call +14155552671 now", Phone, "call +*********71 now"},
		{"phone e164 spaced", "tel: +44 20 7946 0958", Phone, "tel: +** ** **** **58"},
		{"phone e164 trunk", "+44 (0)20 7946 0958", Phone, "+** (*)** **** **58"},
		{"phone nanp parens", "(415) 555-2671", Phone, "(***) ***-**71"},
		{"phone nanp dashes", "phone=415-555-2671;", Phone, "phone=***-***-**71;"},
		{"phone nanp dots", "415.555.2671", Phone, "***.***.**71"},
		{"phone nanp 1", "1-415-555-2671", Phone, "*-***-***-**71"},
		{"phone uk", "ring 020 7946 0958.", Phone, "ring *** **** **58."},
		{"phone uk mobile", "07700 900123", Phone, "***** ****23"},
		{"phone fr", "01 23 45 67 89", Phone, "** ** ** ** 89"},
		{"phone fr dots", "01.23.45.67.89", Phone, "**.**.**.**.89"},
		{"phone de", "Tel. 030 12345678", Phone, "Tel. *** ******78"},
		// credit_card
		{"visa", "card 4242424242424242 ok", CreditCard, "card **** **** **** 4242 ok"},
		{"visa spaced", "4111 1111 1111 1111", CreditCard, "**** **** **** 1111"},
		{"visa 13", "4222222222222", CreditCard, "**** **** **** 2222"},
		{"mastercard dashed", "5555-5555-5555-4444", CreditCard, "**** **** **** 4444"},
		{"mastercard 2-series", "2223003122003222", CreditCard, "**** **** **** 3222"},
		{"amex", "378282246310005", CreditCard, "**** **** **** 0005"},
		{"amex grouped", "3782 822463 10005", CreditCard, "**** **** **** 0005"},
		{"discover", "6011111111111117", CreditCard, "**** **** **** 1117"},
		{"jcb", "3530111333300000", CreditCard, "**** **** **** 0000"},
		{"diners", "30569309025904", CreditCard, "**** **** **** 5904"},
		{"unionpay", "6200000000000005", CreditCard, "**** **** **** 0005"},
		{"card then expiry", "4111 1111 1111 1111 12/25", CreditCard, "**** **** **** 1111 12/25"},
		// iban
		{"iban de", "DE89370400440532013000", IBAN, "DE****************3000"},
		{"iban de spaced", "IBAN DE89 3704 0044 0532 0130 00.", IBAN, "IBAN DE** **** **** **** **30 00."},
		{"iban gb", "GB82WEST12345698765432", IBAN, "GB****************5432"},
		{"iban fr", "FR1420041010050500013M02606", IBAN, "FR*********************2606"},
		{"iban nl lower", "nl91abna0417164300", IBAN, "NL************4300"},
		{"iban no", "NO9386011117947", IBAN, "NO*********7947"},
		// azure_storage_key
		{"azure key standalone", "key1: " + key, AzureStorageKey, "key1: ****"},
		{"azure key json", `{"accountKey": "` + key + `"}`, AzureStorageKey, `{"accountKey": "****"}`},
		// connection_string
		{"conn string", connString(8), ConnectionString, "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=****;EndpointSuffix=core.windows.net"},
		{"conn sql", "Server=db;Database=x;User Id=sa;Password=Hunter2!;", ConnectionString, "Server=db;Database=x;User Id=sa;Password=****;"},
		{"conn odbc", "UID=sa;PWD={se;cret};", ConnectionString, "UID=sa;PWD={****};"},
		{"conn service bus", "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=abcDEF123+/xyz=", ConnectionString, "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=****"},
		{"conn sas", "BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&ss=b&sig=abc%2Bdef", ConnectionString, "BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=****"},
		{"conn env", "DB_PASSWORD=s3cr3t\n", ConnectionString, "DB_PASSWORD=****\n"},
		{"conn camel", "dbPassword=s3cr3t&x=1", ConnectionString, "dbPassword=****&x=1"},
		{"conn quoted", `<add password="p@ss word"/>`, ConnectionString, `<add password="****"/>`},
		{"conn json escaped quotes", `{"cfg":"<db password=\"p@ss;word\" />"}`, ConnectionString, `{"cfg":"<db password=\"****\" />"}`},
		{"conn url", "postgres://admin:S3cret@db.internal:5432/app", ConnectionString, "postgres://admin:****@db.internal:5432/app"},
		// sas_token
		{"sas url", sasURL(10), SASToken, strings.SplitAfter(sasURL(10), "sig=")[0] + "****"},
		{"sas query", "?sig=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789%3D&se=2030-01-01&sp=r", SASToken, "?sig=****&se=2030-01-01&sp=r"},
		// jwt
		{"jwt", "Authorization: Bearer " + testJWT(), JWT, "Authorization: Bearer eyJ****"},
		{"jwt json", `{"token":"` + testJWT() + `"}`, JWT, `{"token":"eyJ****"}`},
		{"weir token", "token=" + testWeirToken() + "&x=1", WeirToken, "token=eyJ****&x=1"},
		// private_key
		{"pem pkcs8", "key:\n" + pemEd + "done", PrivateKey, "key:\n-----BEGIN PRIVATE KEY-----****-----END PRIVATE KEY-----\ndone"},
		{"pem ec", pemE, PrivateKey, "-----BEGIN EC PRIVATE KEY-----****-----END EC PRIVATE KEY-----\n"},
		{"pem rsa", pemR, PrivateKey, "-----BEGIN RSA PRIVATE KEY-----****-----END RSA PRIVATE KEY-----\n"},
		{"pem json", `{"k":"` + strings.ReplaceAll(pemR, "\n", `\n`) + `"}`, PrivateKey, `{"k":"-----BEGIN RSA PRIVATE KEY-----****-----END RSA PRIVATE KEY-----\n"}`},
		{"pem truncated", `"` + strings.ReplaceAll(pemR[:400], "\n", `\n`) + `"`, PrivateKey, `"-----BEGIN RSA PRIVATE KEY-----****"`},
		// github_token
		{"github classic", "token " + gh + ".", GitHubToken, "token ghp_****."},
		{"github oauth", githubClassic("gh"+"o", 11), GitHubToken, "gho_****"},
		{"github server", "GITHUB_TOKEN=" + githubClassic("gh"+"s", 12), GitHubToken, "GITHUB_TOKEN=ghs_****"},
		{"github fine-grained", githubFine(13), GitHubToken, "github_pat_****"},
		// aws_access_key
		{"aws", "aws_access_key_id = " + awsKey(), AWSAccessKey, "aws_access_key_id = AKIA****"},
		{"aws sts", "ASIA" + "Y34FZKBOKMUTVV7A x", AWSAccessKey, "ASIA**** x"},
		// openai_key
		{"openai project", "OPENAI_API_KEY=" + openaiProj(14), OpenAIKey, "OPENAI_API_KEY=sk-proj-****"},
		{"openai classic", `"` + openaiClassic(15) + `"`, OpenAIKey, `"sk-****"`},
	}
}

func TestDetectorsPositive(t *testing.T) {
	m := newMasker(t, FormatPartial)
	for _, tc := range positiveCases() {
		t.Run(tc.name, func(t *testing.T) {
			out, c := m.MaskString(tc.in)
			if out != tc.want {
				t.Errorf("MaskString(%q)\n got %q\nwant %q", tc.in, out, tc.want)
			}
			n := 1
			if c[tc.det] != n || c.Total() != n {
				t.Errorf("counts = %v, want %s=%d", c, tc.det, n)
			}
			// The detector alone finds it too.
			only := newMasker(t, FormatRedact, tc.det.String())
			if _, c := only.MaskString(tc.in); c[tc.det] != n {
				t.Errorf("only %s: counts = %v", tc.det, c)
			}
			// Idempotent.
			if again, c := m.MaskString(out); again != out || !c.IsZero() {
				t.Errorf("masking the output again: %q %v", again, c)
			}
			if _, c := m.MaskBytes([]byte(tc.in)); c[tc.det] != n {
				t.Errorf("MaskBytes counts = %v", c)
			}
		})
	}
}

func TestDetectorsNegative(t *testing.T) {
	m := newMasker(t, FormatPartial)
	for _, in := range []string{
		"",
		"plain prose, nothing to see here.",
		// email look-alikes
		"npm i lodash@4.17.21 @types/node", "see icon@2x.png", "git clone git@github.com:org/repo.git",
		"user@localhost", "@mention", "a@b.c", "foo@bar", "x@-bad.com",
		// phone look-alikes
		"2024-01-15", "15.01.2024", "01/15/2024", "2024-01-15 10:23:45", "2024-01-15T10:23:45.123Z",
		"ORD-2024-000123", "order #5551234567", "$1234567890", "epoch 1700000000", "v1.2.3.4",
		"192.168.100.200", "10.0.19041.1234", "3.14159265358979", "12:30:45", "+1", "555-1234",
		"(555) 123-4567", // exchange 123 is not a valid NANP exchange
		"1234 5678 90", "01.02.2024 1234",
		// card look-alikes
		"4242424242424241", "1234567812345678", "4111-1111-1111-111", "0.4111111111111111",
		"id=abc4111111111111111", "ORD-4111111111111111", "4111111111111111-x",
		"4111111111111111 2222", // a list of numbers, not a grouped card
		// iban look-alikes
		"DE89370400440532013001", "DE8937040044053201300", "XX89370400440532013000", "DE89 3704 0044 0532 0130 0",
		// secrets look-alikes
		"Password= is required", "if password == x", "PWD=/home/alice", "password=****", "password=[REDACTED:connection_string]",
		"sig=abcdefghijklmnopqrstuvwxyz", // no sv=/se=
		"?sv=2022&sig=short",
		"eyJhbGciOiJIUzI1NiJ9", "eyJub3QiOiJhIGhlYWRlciJ9.eyJ4IjoxfQ.c2ln", "eyJ****",
		"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
		"-----BEGIN RSA PRIVATE KEY-----****-----END RSA PRIVATE KEY-----",
		"ghp_tooshort", "xghp_" + randFrom(testRand(1), alnum, 36), "AKIA1234", "AKIAIOSFODNN7EXAMPLEX",
		"sk-learn", "task-sk-" + randFrom(testRand(2), alnum, 40), "sk-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"sha512-" + azureKeyFor(3),
		strings.Repeat("A", 86) + "==",
	} {
		if out, c := m.MaskString(in); out != in || !c.IsZero() {
			t.Errorf("MaskString(%q) = %q %v, want unchanged", in, out, c)
		}
	}
}

func TestFormats(t *testing.T) {
	in := "mail alice@example.com, card 4242 4242 4242 4242"
	red := newMasker(t, FormatRedact)
	if out, _ := red.MaskString(in); out != "mail [REDACTED:email], card [REDACTED:credit_card]" {
		t.Errorf("redact: %q", out)
	}
	null := newMasker(t, FormatNull)
	if out, _ := null.MaskString(in); out != "mail [REDACTED:email], card [REDACTED:credit_card]" {
		t.Errorf("null in text: %q", out)
	}
	h := newMasker(t, FormatHash)
	out, c := h.MaskString(in)
	if c.Total() != 2 || strings.Contains(out, "alice") || strings.Count(out, "[hash:") != 2 {
		t.Errorf("hash: %q %v", out, c)
	}
	again, _ := h.MaskString(in)
	if again != out {
		t.Errorf("hash not stable: %q vs %q", again, out)
	}
	other, _ := New(Config{Detectors: DetectorNames(), Format: FormatHash, HashKey: []byte("another key, 16+ bytes")})
	if o, _ := other.MaskString(in); o == out {
		t.Error("hash does not depend on the key")
	}
	if o, _ := h.MaskString("mail bob@example.com, card 4242 4242 4242 4242"); o[:27] == out[:27] {
		t.Errorf("different values hash equally: %q %q", o, out)
	}
}

func TestMaskValue(t *testing.T) {
	m := newMasker(t, FormatPartial, "email") // shape detection uses every detector
	for _, tc := range []struct{ in, want string }{
		{"alice@example.com", "a****@e*****.com"},
		{"  alice@example.com ", "a****@e*****.com"},
		{"4242 4242 4242 4242", "**** **** **** 4242"},
		{"DE89370400440532013000", "DE****************3000"},
		{"+1 415 555 2671", "+* *** *** **71"},
		{"Smithson", "S****n"},
		{"Bob", "****"},
		{"", ""},
		{"123-45-6789", "1****9"},
		{"Zoë Øster", "Z****r"},
		{testJWT(), "eyJ****"},
		{"ｂｏｂ＠ｅｘａｍｐｌｅ．ｃｏｍ", "b****@e*****.com"},
	} {
		got, c := m.MaskValue(tc.in)
		if got != tc.want || c[ColumnRule] != 1 || c.Total() != 1 {
			t.Errorf("MaskValue(%q) = %q %v, want %q column=1", tc.in, got, c, tc.want)
		}
	}
	red := newMasker(t, FormatRedact)
	if got, _ := red.MaskValue("alice@example.com"); got != "[REDACTED:email]" {
		t.Errorf("redact email value: %q", got)
	}
	if got, _ := red.MaskValue("Smith"); got != "[REDACTED]" {
		t.Errorf("redact value: %q", got)
	}
	null := newMasker(t, FormatNull)
	if got, c := null.MaskValue("Smith"); got != "" || c[ColumnRule] != 1 {
		t.Errorf("null value: %q %v", got, c)
	}
	h := newMasker(t, FormatHash)
	a, _ := h.MaskValue("Smith")
	b, _ := h.MaskValue("Smith")
	d, _ := h.MaskValue("smith")
	if a != b || a == d || !strings.HasPrefix(a, "[hash:") || len(a) != len("[hash:]")+16 {
		t.Errorf("hash values: %q %q %q", a, b, d)
	}
	// The hash of a column value equals the hash of the same value found in
	// text, so masked text and masked columns can be correlated.
	v, _ := h.MaskValue("alice@example.com")
	txt, _ := h.MaskString("to alice@example.com")
	if txt != "to "+v {
		t.Errorf("column hash %q vs text hash %q", v, txt)
	}
	if got, _ := m.AppendMaskedValue([]byte("x="), []byte("alice@example.com")); string(got) != "x=a****@e*****.com" {
		t.Errorf("AppendMaskedValue: %q", got)
	}
}

func TestNormalization(t *testing.T) {
	m := newMasker(t, FormatPartial)
	for _, tc := range []struct{ in, want string }{
		// full-width digits and at sign
		{"card ４２４２４２４２４２４２４２４２ end", "card **** **** **** 4242 end"},
		{"ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "a****@e*****.com"},
		// zero-width characters inside a value are removed with it; the
		// rest of the text, invisible characters included, is kept.
		{"x\u200b a\u200bl\u200bice@exa\u00admple.com \u200by", "x\u200b a****@e*****.com \u200by"},
		{"4242\u2060 4242\ufeff 4242 4242", "**** **** **** 4242"},
		{"é café alice@example.com", "é café a****@e*****.com"},
		// unchanged non-normalized text is returned as is
		{"ﬁle\u200b name", "ﬁle\u200b name"},
	} {
		out, _ := m.MaskString(tc.in)
		if out != tc.want {
			t.Errorf("MaskString(%q)\n got %q\nwant %q", tc.in, out, tc.want)
		}
		if !utf8.ValidString(out) {
			t.Errorf("invalid UTF-8: %q", out)
		}
	}
}

func TestCounts(t *testing.T) {
	var c Counts
	if !c.IsZero() || c.Map() != nil || c.String() != "" {
		t.Error("zero Counts")
	}
	c[Email] = 2
	c.Add(Counts{Phone: 1, ColumnRule: 3})
	if c.Total() != 6 || c.Get("email") != 2 || c.Get("column") != 3 || c.Get("nope") != 0 {
		t.Errorf("counts: %v", c)
	}
	if s := c.String(); s != "email=2 phone=1 column=3" {
		t.Errorf("String() = %q", s)
	}
	if mp := c.Map(); len(mp) != 3 || mp["phone"] != 1 {
		t.Errorf("Map() = %v", mp)
	}
}

func TestNoAllocation(t *testing.T) {
	m := newMasker(t, FormatPartial)
	clean := strings.Repeat("2024-01-15T10:23:45Z INFO request id=42 took 12ms from 10.0.0.7 user=bob\n", 50)
	uni := strings.Repeat("Grüße aus Köln, 東京 — 2024-01-15. ", 50)
	for _, s := range []string{clean, uni} {
		if n := testing.AllocsPerRun(20, func() { m.MaskString(s) }); n != 0 {
			t.Errorf("MaskString on clean text allocates %v times", n)
		}
		b := []byte(s)
		if n := testing.AllocsPerRun(20, func() { m.MaskBytes(b) }); n != 0 {
			t.Errorf("MaskBytes on clean text allocates %v times", n)
		}
		if out, _ := m.MaskBytes(b); &out[0] != &b[0] {
			t.Error("MaskBytes did not return its input")
		}
	}
}

func TestDisabledDetectors(t *testing.T) {
	m := newMasker(t, FormatPartial, "email")
	in := "alice@example.com 4242424242424242 " + testJWT()
	out, c := m.MaskString(in)
	if c.Total() != 1 || !strings.Contains(out, "4242424242424242") {
		t.Errorf("only email enabled: %q %v", out, c)
	}
	none, _ := New(Config{})
	if out, c := none.MaskString(in); out != in || !c.IsZero() {
		t.Error("no detectors: text changed")
	}
	// jwt only: a weir token counts as jwt.
	j := newMasker(t, FormatPartial, "jwt")
	if _, c := j.MaskString(testWeirToken()); c[JWT] != 1 {
		t.Errorf("weir token with jwt only: %v", c)
	}
	w := newMasker(t, FormatPartial, "weir_token")
	if _, c := w.MaskString(testJWT() + " " + testWeirToken()); c[WeirToken] != 1 || c.Total() != 1 {
		t.Errorf("weir_token only: %v", c)
	}
}

func TestSeveral(t *testing.T) {
	m := newMasker(t, FormatPartial)
	in := "cards: 4242424242424242, 5555555555554444; alice@example.com or +44 20 7946 0958 (" + awsKey() + ")"
	want := "cards: **** **** **** 4242, **** **** **** 4444; a****@e*****.com or +** ** **** **58 (AKIA****)"
	out, c := m.MaskString(in)
	if out != want {
		t.Errorf("got  %q\nwant %q", out, want)
	}
	if c.String() != "email=1 phone=1 credit_card=2 aws_access_key=1" {
		t.Errorf("counts %v", c)
	}
	// More candidates than the scanner's fixed array holds.
	many := strings.Repeat("x alice@example.com 4242424242424242\n", 40)
	out, c = m.MaskString(many)
	if c.Total() != 80 || strings.Contains(out, "alice") {
		t.Errorf("many: %v", c)
	}
}

func TestConcurrent(t *testing.T) {
	m := newMasker(t, FormatHash)
	data := string(denseText(64 << 10))
	want, _ := m.MaskString(data)
	done := make(chan string)
	for range 8 {
		go func() {
			out, _ := m.MaskString(data)
			done <- out
		}()
	}
	for range 8 {
		if got := <-done; got != want {
			t.Error("concurrent MaskString differs")
		}
	}
}
