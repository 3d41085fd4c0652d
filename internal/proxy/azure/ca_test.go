package azure

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
)

func TestCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := CAPaths(dir)
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key mode: %v %v", fi.Mode(), err)
	}
	b, _ := pem.Decode(ca.PEM())
	caCert, err := x509.ParseCertificate(b.Bytes)
	if err != nil || !caCert.IsCA || caCert.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Fatalf("CA certificate: %v %+v", err, caCert)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	leaf, err := ca.Leaf("MyVault.vault.azure.net")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "myvault.vault.azure.net", Roots: roots}); err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: "management.azure.com", Roots: roots}); err == nil {
		t.Fatal("a leaf is valid for another host")
	}
	again, _ := ca.Leaf("myvault.vault.azure.net")
	if again != leaf {
		t.Fatal("leaf not cached")
	}
	// Reloaded from data_dir: the same CA, not a new one.
	ca2, err := LoadCA(dir)
	if err != nil || string(ca2.PEM()) != string(ca.PEM()) {
		t.Fatalf("reload: %v", err)
	}
	_ = certFile
}
