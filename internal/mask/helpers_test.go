package mask

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

// Test secrets are generated at test time from fixed seeds instead of being
// written into the source, so secret scanners have nothing to flag.

func testRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randFrom(r *rand.Rand, alphabet string, n int) string {
	var sb strings.Builder
	for range n {
		sb.WriteByte(alphabet[r.IntN(len(alphabet))])
	}
	return sb.String()
}

// azureKeyFor returns an 88-character storage account key.
func azureKeyFor(seed uint64) string {
	return base64.StdEncoding.EncodeToString(randBytes(testRand(seed), 64))
}

func b64url(v any) string {
	j, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(j)
}

// jwtFor returns a JWT with the given header and claims and a random
// signature.
func jwtFor(seed uint64, header, claims map[string]any) string {
	return b64url(header) + "." + b64url(claims) + "." +
		base64.RawURLEncoding.EncodeToString(randBytes(testRand(seed), 32))
}

func testJWT() string {
	return jwtFor(1, map[string]any{"alg": "HS256", "typ": "JWT"},
		map[string]any{"sub": "1234567890", "name": "John Doe", "iat": 1516239022})
}

func testWeirToken() string {
	return jwtFor(2, map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": "k-2024"},
		map[string]any{"jti": "t1", "sub": "agent-7", "aud": "weir", "targets": []string{"pg"}, "exp": 1900000000})
}

// pemEd25519 returns a PKCS#8 "PRIVATE KEY" block.
func pemEd25519(seed uint64) string {
	k := ed25519.NewKeyFromSeed(randBytes(testRand(seed), 32))
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// pemEC returns a SEC 1 "EC PRIVATE KEY" block for a fixed scalar.
func pemEC(seed uint64) string {
	d := new(big.Int).SetBytes(randBytes(testRand(seed), 32))
	d.Mod(d, elliptic.P256().Params().N)
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d.FillBytes(make([]byte, 32)))
	if err != nil {
		panic(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

// pemRSALike returns an "RSA PRIVATE KEY" block with a random body of an
// RSA-2048 key's size (the masker does not parse DER).
func pemRSALike(seed uint64) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: randBytes(testRand(seed), 1190)}))
}

func githubClassic(prefix string, seed uint64) string {
	return prefix + "_" + randFrom(testRand(seed), alnum, 36)
}

func githubFine(seed uint64) string {
	r := testRand(seed)
	return "github" + "_pat_" + randFrom(r, alnum, 22) + "_" + randFrom(r, alnum, 59)
}

func openaiProj(seed uint64) string {
	return "sk-" + "proj-" + randFrom(testRand(seed), alnum+"-_", 120) + "A1a"
}

func openaiClassic(seed uint64) string {
	return "sk-" + randFrom(testRand(seed), alnum, 45) + "A1a"
}

func awsKey() string { return "AK" + "IAIOSFODNN7EXAMPLE" }

func sasURL(seed uint64) string {
	sig := strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(
		base64.StdEncoding.EncodeToString(randBytes(testRand(seed), 32)))
	return "https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&ss=b&srt=o&sp=r&se=2030-01-01T00:00:00Z&spr=https&sig=" + sig
}

func connString(seed uint64) string {
	return "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=" + azureKeyFor(seed) + ";EndpointSuffix=core.windows.net"
}

// zwSplit inserts a zero-width character between every two characters.
func zwSplit(s string, zw rune) string {
	var sb strings.Builder
	for i, r := range s {
		if i > 0 {
			sb.WriteRune(zw)
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

func newMasker(t testing.TB, f Format, dets ...string) *Masker {
	t.Helper()
	if len(dets) == 0 {
		dets = DetectorNames()
	}
	m, err := New(Config{Detectors: dets, Format: f, HashKey: []byte("0123456789abcdef-test-key")})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
