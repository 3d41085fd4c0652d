package mask

import (
	"bufio"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.golden")

// TestFalsePositives: nothing in testdata/false_positives.txt is masked,
// line by line or as one text.
func TestFalsePositives(t *testing.T) {
	f, err := os.Open("testdata/false_positives.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := newMasker(t, FormatPartial)
	var all strings.Builder
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n++
		all.WriteString(line)
		all.WriteByte('\n')
		if out, c := m.MaskString(line); out != line || !c.IsZero() {
			t.Errorf("masked %v:\n  in  %q\n  out %q", c, line, out)
		}
	}
	if n < 100 {
		t.Fatalf("only %d cases read", n)
	}
	if out, c := m.MaskString(all.String()); out != all.String() {
		t.Errorf("whole corpus: masked %v", c)
	}
}

// m08 is corpus case M08: secrets in free text and JSON.
func m08() []detCase {
	key := azureKeyFor(21)
	return []detCase{
		{"88-char key", "the key is " + key + " ok", AzureStorageKey, "the key is **** ok"},
		{"connection string", "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=" + key + ";EndpointSuffix=core.windows.net", ConnectionString,
			"DefaultEndpointsProtocol=https;AccountName=x;AccountKey=****;EndpointSuffix=core.windows.net"},
		{"sas url", "GET " + sasURL(22) + " HTTP/1.1", SASToken, "GET " + strings.SplitAfter(sasURL(22), "sig=")[0] + "**** HTTP/1.1"},
		{"jwt", `{"access_token":"` + testJWT() + `","token_type":"Bearer"}`, JWT, `{"access_token":"eyJ****","token_type":"Bearer"}`},
		{"pem", pemEd25519(23), PrivateKey, "-----BEGIN PRIVATE KEY-----****-----END PRIVATE KEY-----\n"},
		{"iban", `{"iban":"GB82 WEST 1234 5698 7654 32"}`, IBAN, `{"iban":"GB** **** **** **** **54 32"}`},
		{"pan", "paid with 5555555555554444 yesterday", CreditCard, "paid with **** **** **** 4444 yesterday"},
		{"email", "owner: alice@example.com", Email, "owner: a****@e*****.com"},
		{"weir token", "WEIR_TOKEN=" + testWeirToken(), WeirToken, "WEIR_TOKEN=eyJ****"},
	}
}

// secretOf returns the part of a case's input that must not survive.
func secretOf(tc detCase) string {
	in := tc.in
	// The longest run that differs from the expected output is the secret;
	// approximate it as the input minus the shared prefix and suffix.
	p := 0
	for p < len(in) && p < len(tc.want) && in[p] == tc.want[p] {
		p++
	}
	s := 0
	for s < len(in)-p && s < len(tc.want)-p && in[len(in)-1-s] == tc.want[len(tc.want)-1-s] {
		s++
	}
	return in[p : len(in)-s]
}

// TestM08 runs every M08 item plain, split by each kind of invisible
// character between every two characters, and in full-width form where
// that applies.
func TestM08(t *testing.T) {
	m := newMasker(t, FormatPartial)
	for _, tc := range m08() {
		t.Run(tc.name, func(t *testing.T) {
			out, c := m.MaskString(tc.in)
			if out != tc.want || c[tc.det] != 1 {
				t.Errorf("plain: got %q %v\nwant %q", out, c, tc.want)
			}
			secret := secretOf(tc)
			if len(secret) < 8 {
				t.Fatalf("secret %q too short to test", secret)
			}
			for _, zw := range []rune{'\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u00ad'} {
				split := strings.Replace(tc.in, secret, zwSplit(secret, zw), 1)
				out, c := m.MaskString(split)
				if c[tc.det] != 1 {
					t.Errorf("split by %U: counts %v\n%q", zw, c, out)
				}
				if strings.Contains(out, secret[1:len(secret)-1]) || strings.Contains(out, zwSplit(secret[2:len(secret)-2], zw)) {
					t.Errorf("split by %U: secret survived: %q", zw, out)
				}
				if again, c2 := m.MaskString(out); again != out || !c2.IsZero() {
					t.Errorf("split by %U: not idempotent: %v", zw, c2)
				}
			}
		})
	}
}

// TestGolden masks testdata/golden/*.txt in every format and compares with
// the .golden files (go test -run Golden -update rewrites them).
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		in, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, format := range []Format{FormatPartial, FormatRedact, FormatHash} {
			m := newMasker(t, format)
			out, c := m.MaskBytes(in)
			got := string(out) + "\n# counts: " + c.String() + "\n"
			golden := strings.TrimSuffix(f, ".txt") + "." + string(format) + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Errorf("%s: output differs from %s:\n%s", f, golden, got)
			}
		}
	}
}
