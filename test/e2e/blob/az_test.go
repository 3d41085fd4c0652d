package blob

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// az runs the real Debian az CLI with a private config directory.
func az(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("az"); err != nil {
		t.Fatalf("the az CLI is required (Debian package azure-cli): %v", err)
	}
	cmd := exec.Command("az", args...)
	cmd.Env = append(os.Environ(), "AZURE_CONFIG_DIR="+t.TempDir(), "AZURE_CORE_COLLECT_TELEMETRY=0", "AZURE_CORE_ONLY_SHOW_ERRORS=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestAzCLI(t *testing.T) {
	cs, _ := connString(t)
	dir := t.TempDir()

	out, err := az(t, "storage", "blob", "list", "-c", "reports", "--connection-string", cs, "--query", "[].name", "-o", "tsv")
	if err != nil || !strings.Contains(out, "customers.csv") || !strings.Contains(out, "q1/summary.txt") {
		t.Fatalf("list: %v\n%s", err, out)
	}

	file := filepath.Join(dir, "c.csv")
	if out, err = az(t, "storage", "blob", "download", "-c", "reports", "-n", "customers.csv", "-f", file, "--connection-string", cs); err != nil {
		t.Fatalf("download: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(file)
	if !strings.Contains(string(got), "Ada Lovelace") || strings.Contains(string(got), "ada@example.com") || strings.Contains(string(got), "4111 1111 1111 1111") {
		t.Fatalf("download not masked:\n%s", got)
	}

	// Without -f, az writes the blob to stdout (the README demo's line).
	out, err = az(t, "storage", "blob", "download", "-c", "reports", "-n", "customers.csv", "--connection-string", cs, "-o", "none")
	if err != nil || !strings.Contains(out, "Ada Lovelace") || strings.Contains(out, "ada@example.com") {
		t.Fatalf("download to stdout: %v\n%s", err, out)
	}

	up := filepath.Join(dir, "up.txt")
	os.WriteFile(up, []byte("from az\n"), 0o600)
	if out, err = az(t, "storage", "blob", "upload", "-c", "scratch", "-n", "az/up.txt", "-f", up, "--connection-string", cs); err != nil {
		t.Fatalf("allowed upload: %v\n%s", err, out)
	}
	if !exists(t, "scratch", "az/up.txt") {
		t.Fatal("the upload did not land")
	}

	out, err = az(t, "storage", "blob", "delete", "-c", "scratch", "-n", "az/up.txt", "--connection-string", cs)
	if err == nil || !strings.Contains(out, "never-delete") {
		t.Fatalf("delete must be refused with the rule's message: %v\n%s", err, out)
	}
	if !exists(t, "scratch", "az/up.txt") {
		t.Fatal("the blob was deleted")
	}
}
