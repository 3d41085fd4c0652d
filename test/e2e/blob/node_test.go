package blob

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The JavaScript SDK (@azure/storage-blob from tools/node) with weir's
// connection string: list, download (masked), a delete refused with the
// rule's message.
const nodeScript = `
const { BlobServiceClient } = require("@azure/storage-blob");
(async () => {
  const svc = BlobServiceClient.fromConnectionString(process.env.CS);
  const c = svc.getContainerClient("reports");
  const names = [];
  for await (const b of c.listBlobsFlat()) names.push(b.name);
  console.log("LIST " + names.join(","));
  // download() streams; downloadToBuffer() pre-sizes from the blob's
  // length, which masking changes (see docs/blob.md).
  const res = await c.getBlobClient("customers.csv").download();
  const chunks = [];
  for await (const ch of res.readableStreamBody) chunks.push(ch);
  console.log("BODY " + JSON.stringify(Buffer.concat(chunks).toString()));
  try {
    await svc.getContainerClient("scratch").deleteBlob("keep.txt");
    console.log("DELETE ok");
  } catch (e) {
    console.log("DELETE " + e.statusCode + " " + e.code + " " + JSON.stringify(e.message));
  }
})().catch(e => { console.error(e); process.exit(1); });
`

func TestNodeSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is required: %v", err)
	}
	cs, _ := connString(t)
	script := filepath.Join(t.TempDir(), "blob.js")
	os.WriteFile(script, []byte(nodeScript), 0o600)
	cmd := exec.Command(node, script)
	cmd.Env = append(os.Environ(), "CS="+cs, "NODE_PATH="+filepath.Join(repoRoot(), "tools", "node", "node_modules"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "LIST customers.csv,") || !strings.Contains(s, "Ada Lovelace") || strings.Contains(s, "ada@example.com") ||
		!strings.Contains(s, "DELETE 403 WeirPolicyDenied") || !strings.Contains(s, "never-delete") {
		t.Fatalf("node output:\n%s", s)
	}
	if !exists(t, "scratch", "keep.txt") {
		t.Fatal("the blob was deleted")
	}
}
