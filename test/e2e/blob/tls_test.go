package blob

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	weirblob "github.com/weir-gw/weir/internal/proxy/blob"
	"github.com/weir-gw/weir/internal/tlsutil"
)

// Off loopback weir speaks TLS with its own certificate; az trusts it
// through REQUESTS_CA_BUNDLE and Go through a pool, and a weir bearer
// token works too (the SDKs send tokens only over https).
func TestOverTLS(t *testing.T) {
	tlsCfg, err := tlsutil.ServerConfig("", "", env.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(weirblob.Prefix, env.h)
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = tlsCfg
	srv.StartTLS()
	defer srv.Close()
	certFile := filepath.Join(env.dataDir, "tls", "server.crt")
	tok, claims := token(t, "ci-bot", time.Hour)
	cs := weirblob.ConnectionString(srv.URL+weirblob.Prefix+"lake", claims.ID, env.secret)
	if !strings.HasPrefix(cs, "DefaultEndpointsProtocol=https;") {
		t.Fatalf("connection string %s", cs)
	}

	cmd := exec.Command("az", "storage", "blob", "list", "-c", "reports", "--connection-string", cs, "--query", "[].name", "-o", "tsv")
	cmd.Env = append(os.Environ(), "AZURE_CONFIG_DIR="+t.TempDir(), "AZURE_CORE_COLLECT_TELEMETRY=0", "REQUESTS_CA_BUNDLE="+certFile)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "customers.csv") {
		t.Fatalf("az over TLS: %v\n%s", err, out)
	}

	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	opts := &azblob.ClientOptions{ClientOptions: policy.ClientOptions{Transport: hc}}
	c, err := azblob.NewClient(srv.URL+weirblob.Prefix+"lake", staticToken(tok), opts)
	if err != nil {
		t.Fatal(err)
	}
	pager := c.NewListBlobsFlatPager("reports", nil)
	page, err := pager.NextPage(context.Background())
	if err != nil || len(page.Segment.BlobItems) == 0 {
		t.Fatalf("bearer over TLS: %v", err)
	}
}

// staticToken is an azcore.TokenCredential handing out a weir token, as
// weir's managed-identity endpoint would.
type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}
