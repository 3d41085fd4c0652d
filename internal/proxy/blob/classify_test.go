package blob

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/weir-gw/weir/internal/command"
)

func TestClassify(t *testing.T) {
	noCopy := func(string) (string, error) { return "", nil }
	for _, c := range []struct {
		method, path, query string
		hdr                 map[string]string
		op                  string
		kind                command.Kind
		err                 string
	}{
		{"GET", "", "comp=list", nil, "ListContainers", command.KindRead, ""},
		{"POST", "", "restype=service&comp=userdelegationkey", nil, "GetUserDelegationKey", command.KindAdmin, ""},
		{"PUT", "/reports", "restype=container", nil, "CreateContainer", command.KindWrite, ""},
		{"DELETE", "/reports", "restype=container", nil, "DeleteContainer", command.KindWrite, ""},
		{"GET", "/reports", "restype=container&comp=list&prefix=q1/", nil, "ListBlobs", command.KindRead, ""},
		{"PUT", "/reports", "restype=container&comp=acl", nil, "SetContainerACL", command.KindAdmin, ""},
		{"GET", "/reports/a.csv", "", nil, "GetBlob", command.KindRead, ""},
		{"HEAD", "/reports/a.csv", "", nil, "GetBlobProperties", command.KindRead, ""},
		{"PUT", "/reports/a.csv", "", map[string]string{"x-ms-blob-type": "BlockBlob"}, "PutBlob", command.KindWrite, ""},
		{"PUT", "/reports/a.csv", "", map[string]string{"x-ms-copy-source": "https://x.blob.core.windows.net/c/b"}, "CopyBlob", command.KindAdmin, ""},
		{"PUT", "/reports/a.csv", "comp=block&blockid=QQ==", nil, "PutBlock", command.KindWrite, ""},
		{"PUT", "/reports/a.csv", "comp=blocklist", nil, "PutBlockList", command.KindWrite, ""},
		{"PUT", "/reports/a.csv", "comp=appendblock", nil, "AppendBlock", command.KindWrite, ""},
		{"DELETE", "/reports/a.csv", "", nil, "DeleteBlob", command.KindWrite, ""},
		{"PUT", "/reports/a.csv", "comp=metadata", nil, "SetBlobMetadata", command.KindWrite, ""},
		{"PUT", "/reports/a.csv", "comp=lease", nil, "LeaseBlob", command.KindWrite, ""},
		{"PUT", "/reports/a.csv", "comp=snapshot", nil, "SnapshotBlob", command.KindWrite, ""},
		{"POST", "/reports", "restype=container&comp=batch", nil, "BlobBatch", "", ""},
		{"PUT", "/reports/a.csv", "", nil, "", "", "x-ms-blob-type"},
		{"PATCH", "/reports/a.csv", "", nil, "", "", "does not know"},
		{"GET", "/reports/a.csv", "comp=frobnicate", nil, "", "", "does not know"},
		{"GET", "/reports/a.csv", "foo=1", nil, "", "", "not one weir understands"},
		{"GET", "/reports/a.csv", "COMP=list", nil, "", "", "lower case"},
		{"GET", "/reports", "", nil, "", "", "restype=container"},
		{"POST", "", "comp=list", nil, "", "", "does not know"},
	} {
		p, err := CanonicalPath(c.path)
		if err != nil {
			t.Fatal(err)
		}
		q, _ := url.ParseQuery(c.query)
		h := http.Header{}
		for k, v := range c.hdr {
			h.Set(k, v)
		}
		cmd, err := classify(c.method, p, q, h, noCopy)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %s?%s: want error %q, got %v %+v", c.method, c.path, c.query, c.err, err, cmd)
			}
			continue
		}
		if err != nil || cmd.Operation != c.op || cmd.Kind != c.kind || cmd.Protocol != "blob" || cmd.Method != c.method {
			t.Errorf("%s %s?%s: got %+v, %v", c.method, c.path, c.query, cmd, err)
		}
	}
}

func TestClassifyRisksAndResources(t *testing.T) {
	p, _ := CanonicalPath("/scratch/a.csv")
	h := http.Header{}
	h.Set("x-ms-copy-source", "https://partner.blob.core.windows.net/c/b")
	h.Set("x-ms-range", "bytes=0-15")
	cmd, err := classify("PUT", p, url.Values{}, h, func(string) (string, error) { return "partner/c/b", nil })
	if err != nil {
		t.Fatal(err)
	}
	if !cmd.HasRisk(RiskCopy) || cmd.Reads[0] != "partner/c/b" || cmd.Writes[0] != "scratch/a.csv" || cmd.Attrs["range"] != "true" || cmd.Attrs["copy_source"] != "partner/c/b" {
		t.Fatalf("%+v", cmd)
	}
	p, _ = CanonicalPath("")
	cmd, _ = classify("POST", p, url.Values{"restype": {"service"}, "comp": {"userdelegationkey"}}, http.Header{}, nil)
	if !cmd.HasRisk(RiskMintsCredential) {
		t.Fatalf("%+v", cmd)
	}
}
