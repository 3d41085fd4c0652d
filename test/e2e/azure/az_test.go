package azure

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// azEnv writes what `weir env --agent` prints to a file an agent's shell
// sources, as a user would paste it.
func azEnv(t *testing.T, agent string) string {
	t.Helper()
	out, _ := weir(t, nil, "env", "--agent", agent, "--ttl", "30m")
	for _, v := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "HTTPS_PROXY", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS"} {
		if !strings.Contains(out, "export "+v+"=") {
			t.Fatalf("weir env does not set %s:\n%s", v, out)
		}
	}
	path := filepath.Join(t.TempDir(), "weir.env")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// az runs the real az CLI in a shell that sourced the weir env file, with
// a private config dir and no telemetry.
func az(t *testing.T, envFile, configDir string, args ...string) (string, string, error) {
	t.Helper()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	cmd := exec.Command("bash", "-c", ". "+envFile+" && exec az "+strings.Join(quoted, " "))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + configDir, "AZURE_CONFIG_DIR=" + configDir,
		"AZURE_CORE_COLLECT_TELEMETRY=0", "AZURE_CORE_SURVEY_MESSAGE=0", "AZURE_CORE_NO_COLOR=1", "LANG=C.UTF-8"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("az %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return stdout.String(), stderr.String(), err
}

// The user story with the real az CLI: login with the managed
// identity weir provides, list groups, keys behind approval and masked,
// a Key Vault secret masked, a role assignment denied.
func TestAzCLI(t *testing.T) {
	envFile := azEnv(t, "ci-bot")
	cfgDir := t.TempDir()
	must := func(args ...string) string {
		t.Helper()
		out, errOut, err := az(t, envFile, cfgDir, args...)
		if err != nil {
			t.Fatalf("az %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}

	out := must("login", "--identity", "-o", "json")
	var subs []map[string]any
	if err := json.Unmarshal([]byte(out), &subs); err != nil || len(subs) != 1 || subs[0]["id"] != subID {
		t.Fatalf("az login --identity: %v\n%s", err, out)
	}

	out = must("group", "list", "-o", "json")
	if !strings.Contains(out, `"my-resource-group"`) {
		t.Fatalf("az group list: %s", out)
	}

	// listKeys is held for approval (async): refused with the request id.
	keys := []string{"storage", "account", "keys", "list", "-g", "my-resource-group", "-n", "sto2220", "-o", "json"}
	out, errOut, err := az(t, envFile, cfgDir, keys...)
	if err == nil {
		t.Fatalf("listKeys ran without approval: %s", out)
	}
	m := regexp.MustCompile(`(?i)approval request (\d+)`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("az storage account keys list: no approval request id in:\n%s", errOut)
	}
	if w.fake.saw("/listKeys") {
		t.Fatal("listKeys reached ARM before approval")
	}
	admin, _ := weir(t, nil, "admin", "token", "issue", "--name", "alice", "--role", "approver")
	adminEnv := []string{"WEIR_ADMIN_TOKEN=" + strings.TrimSpace(admin), "WEIR_URL=http://" + w.httpAddr}
	weir(t, adminEnv, "approvals", "approve", m[1])
	out = must(keys...)
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 2 {
		t.Fatalf("keys after approval: %v\n%s", err, out)
	}
	var want struct {
		Keys []struct{ Value string } `json:"keys"`
	}
	json.Unmarshal(readTestdata("listkeys.json"), &want)
	for i, k := range got {
		if k["value"] == want.Keys[i].Value || strings.Contains(out, want.Keys[i].Value) {
			t.Fatalf("storage key %d reached the agent unmasked: %s", i, out)
		}
		if k["keyName"] != []string{"key1", "key2"}[i] {
			t.Fatalf("masking broke the response: %s", out)
		}
	}

	// A role assignment at any scope is denied by policy, and never sent.
	// (Debian's `az role assignment create` fails before sending anything,
	// so `az rest` sends the PUT; the path's case is the attacker's, H02.)
	out, errOut, err = az(t, envFile, cfgDir, "rest", "--method", "put",
		"--url", "https://management.azure.com/subscriptions/"+subID+"/resourceGroups/rg-dev/providers/microsoft.authorization/ROLEASSIGNMENTS/0b3a2bd4-6c1a-4ab1-9b43-1c8b4e9f7a11?api-version=2022-04-01",
		"--body", `{"properties":{"roleDefinitionId":"/subscriptions/`+subID+`/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7","principalId":"8f70baf1-1f6e-46a2-a1ff-238dac1ebfb7"}}`)
	if err == nil || !strings.Contains(out+errOut, "no-role-assignments") {
		t.Fatalf("role assignment create was not denied by the rule: %v\n%s%s", err, out, errOut)
	}
	if w.fake.saw("roleAssignments/") || w.fake.saw("ROLEASSIGNMENTS/") || w.fake.saw("roleassignments/") {
		t.Fatal("a role assignment write reached ARM")
	}
}

// An agent whose targets hold no ARM target gets no ARM token.
func TestAzLoginWithoutARMTarget(t *testing.T) {
	envFile := azEnv(t, "kv-only")
	_, errOut, err := az(t, envFile, t.TempDir(), "login", "--identity")
	if err == nil || !strings.Contains(errOut, "has no azure-arm target") {
		t.Fatalf("az login --identity for an agent without an ARM target: %v\n%s", err, errOut)
	}
}

// Debian's az 2.45 cannot run `az keyvault secret show` (its keyvault
// module imports azure.keyvault.v7_0, which the package lacks), so Key Vault
// is driven by the Azure SDK for Python that ships with it: SecretClient
// with ManagedIdentityCredential (IDENTITY_ENDPOINT/IDENTITY_HEADER), going
// through the Key Vault challenge, HTTPS_PROXY and REQUESTS_CA_BUNDLE.
func TestPythonSDKKeyVault(t *testing.T) {
	envFile := azEnv(t, "ci-bot")
	script := `
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
c = SecretClient("https://myvault.vault.azure.net/", ManagedIdentityCredential())
s = c.get_secret("mysecretname")
print("VALUE=" + s.value)
print("ID=" + s.id)
`
	cmd := exec.Command("bash", "-c", ". "+envFile+" && exec /usr/bin/python3 -c \"$SCRIPT\"")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "SCRIPT=" + script}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python SecretClient: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "VALUE=") || strings.Contains(string(out), "mysecretvalue") {
		t.Fatalf("secret value not masked:\n%s", out)
	}
	if !strings.Contains(string(out), "ID=https://myvault.vault.azure.net/secrets/mysecretname/") {
		t.Fatalf("secret id changed:\n%s", out)
	}
	if r, ok := w.fake.last("/secrets/mysecretname"); !ok || r.Header.Get("Authorization") != "Bearer "+kvToken {
		t.Fatalf("Key Vault did not get weir's token: %+v", r)
	}
}

// A write the policy allows (rg-dev) goes through az rest unchanged, and
// one it does not (another resource group) is denied by default.
func TestAzRestWrites(t *testing.T) {
	envFile := azEnv(t, "ci-bot")
	cfgDir := t.TempDir()
	if out, errOut, err := az(t, envFile, cfgDir, "login", "--identity"); err != nil {
		t.Fatalf("login: %v %s %s", err, out, errOut)
	}
	url := "https://management.azure.com/subscriptions/" + subID + "/resourcegroups/%s?api-version=2022-09-01"
	out, errOut, err := az(t, envFile, cfgDir, "rest", "--method", "put", "--url", fmt.Sprintf(url, "rg-dev"), "--body", `{"location":"eastus","tags":{"owner":"ci-bot"}}`)
	if err != nil {
		t.Fatalf("allowed write: %v\n%s%s", err, out, errOut)
	}
	if r, ok := w.fake.last("/resourcegroups/rg-dev"); !ok || r.Method != "PUT" || !strings.Contains(string(r.Body), `"ci-bot"`) {
		t.Fatalf("the PUT did not reach ARM as sent: %+v", r)
	}
	out, errOut, err = az(t, envFile, cfgDir, "rest", "--method", "delete", "--url", fmt.Sprintf(url, "my-resource-group"))
	if err == nil || !strings.Contains(errOut, "default deny") {
		t.Fatalf("delete outside rg-dev: %v\n%s%s", err, out, errOut)
	}
	if r, ok := w.fake.last("/resourcegroups/my-resource-group"); ok && r.Method == "DELETE" {
		t.Fatalf("a DELETE reached ARM: %s", r.Path)
	}
}

// The Azure SDK for JavaScript (@azure/identity DefaultAzureCredential and
// core-rest-pipeline, whose proxy policy reads HTTPS_PROXY/NO_PROXY) with
// NODE_EXTRA_CA_CERTS, from the same `weir env` output.
func TestNodeSDK(t *testing.T) {
	root, err := filepath.Abs("../../../tools/node/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "@azure", "identity")); err != nil {
		t.Fatalf("@azure/identity is not installed in tools/node (run the deps step): %v", err)
	}
	envFile := azEnv(t, "ci-bot")
	script := `
const { DefaultAzureCredential } = require("@azure/identity");
const p = require("@azure/core-rest-pipeline");
(async () => {
  const cred = new DefaultAzureCredential();
  const pipeline = p.createPipelineFromOptions({ retryOptions: { maxRetries: 0 } });
  pipeline.addPolicy(p.bearerTokenAuthenticationPolicy({ credential: cred, scopes: "https://management.azure.com/.default" }));
  const client = p.createDefaultHttpClient();
  const send = (url, method) => pipeline.sendRequest(client, p.createPipelineRequest({ url, method: method || "GET" }));
  let r = await send(process.env.ARM + "/resourcegroups?api-version=2022-09-01");
  console.log("LIST " + r.status + " " + r.bodyAsText);
  r = await send(process.env.ARM + "/resourceGroups/rg-dev/providers/Microsoft.Storage/storageAccounts/sto2220/listKeys?api-version=2022-09-01", "POST");
  console.log("KEYS " + r.status + " " + r.bodyAsText);
})().catch(e => { console.error(e); process.exit(1); });
`
	cmd := exec.Command("bash", "-c", ". "+envFile+" && exec node -e \"$SCRIPT\"")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "SCRIPT=" + script, "NODE_PATH=" + root,
		"ARM=https://management.azure.com/subscriptions/" + subID}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	if !strings.Contains(string(out), "LIST 200 ") || !strings.Contains(string(out), "my-resource-group") {
		t.Fatalf("node list: %s", out)
	}
	if !strings.Contains(string(out), "KEYS 403 ") || !strings.Contains(string(out), "approval") {
		t.Fatalf("node listKeys was not held for approval: %s", out)
	}
}
