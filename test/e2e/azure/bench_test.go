package azure

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// BenchmarkProxyGET is one ARM read through weir (tunnel kept alive:
// authenticate once, then classify, decide, audit, forward with weir's
// token, mask) against the same read sent straight to the stand-in.
//
//	WEIR_E2E_BIN=… go test ./test/e2e/azure -run '^$' -bench Proxy -benchtime 2000x
func BenchmarkProxyGET(b *testing.B) {
	target := "/subscriptions/" + subID + "/resourcegroups/my-resource-group?api-version=2022-09-01"
	b.Run("through-weir", func(b *testing.B) {
		roots := bundle(b)
		tok := issueToken(b, "ci-bot")
		tc, br := tunnel(b, "management.azure.com", roots)
		raw := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: management.azure.com\r\nAuthorization: Bearer %s\r\n\r\n", target, tok)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := io.WriteString(tc, raw); err != nil {
				b.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: w.up.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}}}
		req, _ := http.NewRequest("GET", w.up.URL+target, nil)
		req.Header.Set("Authorization", "Bearer "+armToken)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
