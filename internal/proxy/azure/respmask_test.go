package azure

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/weir-gw/weir/internal/mask"
)

func newMaskerF() (*mask.Masker, error) {
	return mask.New(mask.Config{Detectors: mask.DetectorNames()})
}

func newMasker(t *testing.T) *mask.Masker {
	m, err := newMaskerF()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameHost(s string) (string, bool) {
	if strings.HasPrefix(s, "https://management.azure.com/") {
		return s, true
	}
	return "", false
}

func TestMaskJSON(t *testing.T) {
	m := newMasker(t)
	key := "BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRg=="
	tests := []struct {
		name, in  string
		allSecret bool
		gone      []string // must not appear in the output
		kept      []string // must appear unchanged
	}{
		{"storage keys", `{"keys":[{"keyName":"key1","permissions":"Full","value":"` + key + `"}]}`, false, []string{key}, []string{`"keyName":"key1"`, `"permissions":"Full"`}},
		{"Key Vault secret", `{"value":"mysecretvalue","id":"https://v.vault.azure.net/secrets/s/1","attributes":{"enabled":true,"created":1493938410}}`, false,
			[]string{"mysecretvalue"}, []string{`"id":"https://v.vault.azure.net/secrets/s/1"`, `"enabled":true`, `"created":1493938410`}},
		{"ARM list wrapper is not a secret", `{"value":[{"name":"rg","properties":{"provisioningState":"Succeeded"}}]}`, false, nil, []string{`"name":"rg"`, `"provisioningState":"Succeeded"`}},
		{"connection string in free text", `{"description":"use DefaultEndpointsProtocol=https;AccountName=a;AccountKey=` + key + `;EndpointSuffix=core.windows.net"}`, false, []string{key}, nil},
		{"deployment outputs", `{"properties":{"outputs":{"conn":{"type":"String","value":"Server=x;Password=hunter2hunter2"}}}}`, false, []string{"hunter2hunter2"}, []string{`"type":"String"`}},
		{"app settings", `{"properties":{"DB_PASSWORD":"p4ssw0rd-plain","FEATURE":"on"},"name":"appsettings"}`, true, []string{"p4ssw0rd-plain", `"FEATURE":"on"`}, []string{`"name":"appsettings"`}},
		{"SAS token", `{"accountSasToken":"sv=2021-06-08&ss=b&sig=abcdefabcdefabcdefabcdefabcdefabcdefabcdef%3D"}`, false, []string{"sig=abcdef"}, nil},
		{"member order kept", `{"z":1,"a":2,"m":[true,false,null,"x"]}`, false, nil, []string{`{"z":1,"a":2,"m":[true,false,null,"x"]}`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, counts, err := MaskJSON(m, []byte(tc.in), tc.allSecret, sameHost)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(out) {
				t.Fatalf("invalid JSON out: %s", out)
			}
			for _, g := range tc.gone {
				if strings.Contains(string(out), g) {
					t.Fatalf("%q survived: %s", g, out)
				}
			}
			for _, k := range tc.kept {
				if !strings.Contains(string(out), k) {
					t.Fatalf("%q changed: %s", k, out)
				}
			}
			if len(tc.gone) > 0 && counts.Total() == 0 {
				t.Fatalf("nothing counted for %s", out)
			}
		})
	}
	// Masking off (no detectors): secret-named values still never leave.
	out, _, err := MaskJSON(nil, []byte(`{"value":"mysecretvalue"}`), false, sameHost)
	if err != nil || strings.Contains(string(out), "mysecretvalue") {
		t.Fatalf("nil masker: %s %v", out, err)
	}
}

// H10: a nextLink to another host refuses the whole response.
func TestMaskJSONNextLink(t *testing.T) {
	for _, tc := range []struct {
		in  string
		err error
	}{
		{`{"value":[],"nextLink":"https://management.azure.com/subscriptions?api-version=2022-12-01&$skiptoken=x"}`, nil},
		{`{"value":[],"nextLink":null}`, nil},
		{`{"value":[],"nextLink":"https://evil.example/x"}`, ErrForeignLink},
		{`{"value":[],"NextLink":"https://evil.example/x"}`, ErrForeignLink},
		{`{"value":[],"@odata.nextLink":"https://evil.example/x"}`, ErrForeignLink},
		{`{"a":{"nextLink":"https://evil.example/x"}}`, ErrForeignLink},
	} {
		_, _, err := MaskJSON(nil, []byte(tc.in), false, sameHost)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.in, err, tc.err)
		}
	}
	if _, _, err := MaskJSON(nil, []byte(`{"a":1} x`), false, sameHost); err == nil {
		t.Error("trailing data accepted")
	}
}

func TestRewriteLink(t *testing.T) {
	rt := &route{hosts: map[string]bool{"127.0.0.1:8443": true, "management.azure.com": true}}
	for _, tc := range []struct {
		in, out string
		ok      bool
	}{
		{"https://management.azure.com/x?y=1", "https://management.azure.com/x?y=1", true},
		{"https://127.0.0.1:8443/x?y=1", "https://management.azure.com/x?y=1", true},
		{"/relative", "/relative", true},
		{"https://evil.example/x", "", false},
		{"http://management.azure.com/x", "", false},
		{"https://user@management.azure.com/x", "", false},
		{"//evil.example/x", "", false},
	} {
		got, ok := rewriteLink(tc.in, rt, "management.azure.com")
		if ok != tc.ok || (ok && got != tc.out) {
			t.Errorf("%s: %q %v, want %q %v", tc.in, got, ok, tc.out, tc.ok)
		}
	}
}

func TestCheckHeadAmbiguity(t *testing.T) {
	for _, tc := range []struct {
		head string
		bad  bool
	}{
		{"GET / HTTP/1.1\r\nHost: a", false},
		{"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked", true},
		{"POST / HTTP/1.1\r\ncontent-length: 1\r\nContent-Length: 1", true},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked", true},
	} {
		if err := headAmbiguity([]byte(tc.head)); (err != nil) != tc.bad {
			t.Errorf("%q: %v", tc.head, err)
		}
	}
}

// Numbers are values too: a card number sent as a number is masked, and a
// number under a secret name is masked whole; keys are scanned.
func TestMaskJSONNumbersAndKeys(t *testing.T) {
	m := newMasker(t)
	out, _, err := MaskJSON(m, []byte(`{"card":4111111111111111,"password":123456,"count":3,"ada@example.com":1}`), false, func(s string) (string, bool) { return s, true })
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if strings.Contains(s, "4111111111111111") || strings.Contains(s, "123456") || strings.Contains(s, "ada@example.com") || !strings.Contains(s, `"count":3`) {
		t.Fatalf("%s", s)
	}
}
