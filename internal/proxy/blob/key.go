package blob

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LoadSecret returns weir's blob secret from data_dir/blob.key, creating
// it (0600) on first use. Every agent account key is derived from it, so
// the server and `weir token issue` on the same data_dir agree.
func LoadSecret(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, "blob.key")
	b, err := os.ReadFile(path)
	if err == nil && len(b) == 32 {
		return b, nil
	}
	if err == nil {
		return nil, fmt.Errorf("%s is corrupt (want 32 bytes); remove it to make a new one (issued connection strings then stop working)", path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		// The server and the CLI started together; use the one written.
		return LoadSecret(dataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	return b, f.Close()
}

// ConnectionString is what an agent gets for a target: its weir token's id
// as the account name (the SDK sends it in every SharedKey header, which is
// how weir knows whose key signed) and the key derived for that token id.
// The token itself is not in it and never travels: the key only proves
// possession, and only to this weir. blobEndpoint is weir's URL for the
// target (…/blob/<target>).
func ConnectionString(blobEndpoint, tokenID string, secret []byte) string {
	proto := "https"
	if strings.HasPrefix(blobEndpoint, "http://") {
		proto = "http"
	}
	return fmt.Sprintf("DefaultEndpointsProtocol=%s;AccountName=%s;AccountKey=%s;BlobEndpoint=%s", proto, tokenID, base64.StdEncoding.EncodeToString(DeriveKey(secret, tokenID)), blobEndpoint)
}
