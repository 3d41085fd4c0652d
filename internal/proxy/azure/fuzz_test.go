package azure

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/weir-gw/weir/internal/config"
)

// FuzzClassify: no input panics, and what is classified is forwarded in
// a canonical form that classifies to the same commands again (what is
// decided is what is sent).
func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		"GET\x00/subscriptions/s/resourcegroups\x00api-version=2022-09-01\x00",
		"POST\x00/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a/listKeys\x00api-version=2022-09-01\x00",
		"PUT\x00/subscriptions/s/resourcegroups/rg/providers/Microsoft.Resources/deployments/d\x00api-version=2022-09-01\x00{\"properties\":{\"template\":{\"resources\":[{\"type\":\"Microsoft.Authorization/roleAssignments\"}]}}}",
		"POST\x00/batch\x00api-version=2020-06-01\x00{\"requests\":[{\"httpMethod\":\"DELETE\",\"url\":\"/subscriptions/s/resourcegroups/x?api-version=2022-09-01\"}]}",
		"GET\x00/secrets/a/\x00api-version=7.4\x00",
		"GET\x00/subscriptions/%2e%2e/x\x00api-version=2022-09-01\x00",
		"GET\x00/providers/a/b/c/providers/d/e/f/g\x00api-version=2022-09-01\x00",
		"POST\x00/subscriptions/s/providers/x/register\x00api-version=2022-09-01\x00",
	} {
		f.Add(s)
	}
	kinds := []string{config.KindAzureARM, config.KindAzureKeyVault, config.KindAzureFunctions}
	f.Fuzz(func(t *testing.T, in string) {
		parts := strings.SplitN(in, "\x00", 4)
		for len(parts) < 4 {
			parts = append(parts, "")
		}
		var body []byte
		if parts[3] != "" {
			body = []byte(parts[3])
		}
		for _, k := range kinds {
			o := &ClassifyOptions{Kind: k, Host: "x.vault.azure.net"}
			cl, err := Classify(o, parts[0], parts[1], parts[2], body)
			if err != nil {
				if _, ok := err.(*Refusal); !ok {
					t.Fatalf("error that is not a Refusal: %v", err)
				}
				continue
			}
			again, err := Classify(o, parts[0], cl.Path, cl.RawQuery, body)
			if err != nil {
				t.Fatalf("canonical form %s?%s refused: %v", cl.Path, cl.RawQuery, err)
			}
			if len(again.Commands) != len(cl.Commands) {
				t.Fatalf("canonical form classifies differently")
			}
			for i := range cl.Commands {
				a, b := cl.Commands[i], again.Commands[i]
				if a.Operation != b.Operation || a.Resource != b.Resource || a.Kind != b.Kind {
					t.Fatalf("canonical form classifies differently: %+v vs %+v", a, b)
				}
			}
		}
	})
}

// FuzzCheckJSON: a body CheckJSON accepts is valid JSON to encoding/json too.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1,"A":2}`, `[{"x":[{"y":{"z":null}}]}]`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{} []`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if CheckJSON(b) == nil && !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
	})
}

// FuzzMaskJSON: masking never panics, and its output is valid JSON.
func FuzzMaskJSON(f *testing.F) {
	for _, s := range []string{`{"value":"x","keys":[{"value":"y"}]}`, `{"nextLink":"https://management.azure.com/x"}`, `[1,"a",{"password":"p"}]`, `"s"`, `{"a":1e400}`} {
		f.Add([]byte(s))
	}
	m, _ := newMaskerF()
	f.Fuzz(func(t *testing.T, b []byte) {
		out, _, err := MaskJSON(m, b, len(b)%2 == 0, sameHost)
		if err == nil && !json.Valid(out) {
			t.Fatalf("invalid output %q for %q", out, b)
		}
	})
}

// FuzzCheckHead: the head check never panics and never accepts a head
// carrying both framings.
func FuzzCheckHead(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nx", "GET / HTTP/1.1\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkHead(bufio.NewReaderSize(bytes.NewReader(b), maxHead))
		low := strings.ToLower(string(b))
		if i := strings.Index(low, "\r\n\r\n"); err == nil && i >= 0 {
			head := low[:i]
			if strings.Contains(head, "\r\ncontent-length:") && strings.Contains(head, "\r\ntransfer-encoding:") {
				t.Fatalf("accepted CL+TE: %q", b)
			}
		}
	})
}
