package access

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"mamoru/atomicfile"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	"mamoru/signing"
)

// CertValidity is how long a certificate LoadOrCreateCert makes is valid.
const CertValidity = 2 * 365 * 24 * time.Hour

// LoadOrCreateCert returns the TLS pair in certFile and keyFile and the
// SHA-256 fingerprint of its certificate, "AB:CD:…", for a manager to
// compare with what the browser shows. If neither file exists it first
// makes a self-signed ECDSA P-256 certificate for hosts (IP addresses and
// names) valid for CertValidity, writes the key with mode 0600, and says
// created. It refuses a key file its group or others may read, and one
// file without the other.
func LoadOrCreateCert(certFile, keyFile string, hosts []string) (cert tls.Certificate, fingerprint string, created bool, err error) {
	_, certErr := os.Stat(certFile)
	_, keyErr := os.Stat(keyFile)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		if err := createCert(certFile, keyFile, hosts); err != nil {
			return tls.Certificate{}, "", false, err
		}
		created = true
	case errors.Is(certErr, fs.ErrNotExist) || errors.Is(keyErr, fs.ErrNotExist):
		return tls.Certificate{}, "", false, fmt.Errorf("access: %s and %s go together, but only one exists: restore the other, or remove it to have a new pair made", certFile, keyFile)
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		return tls.Certificate{}, "", false, fmt.Errorf("access: TLS key: %w", err)
	}
	if err := signing.OwnerOnly(keyFile, fi); err != nil {
		return tls.Certificate{}, "", false, fmt.Errorf("access: TLS key: %w", err)
	}
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, "", false, fmt.Errorf("access: TLS pair %s, %s: %w", certFile, keyFile, err)
	}
	return cert, Fingerprint(cert.Certificate[0]), created, nil
}

// Fingerprint is the SHA-256 of a certificate's DER bytes as browsers
// show it: upper-case hex pairs joined by ':'.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	hex := make([]string, len(sum))
	for i, b := range sum {
		hex[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(hex, ":")
}

func createCert(certFile, keyFile string, hosts []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("access: make a TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return fmt.Errorf("access: make a TLS certificate: %w", err)
	}
	now := time.Now() // the wall clock is the point: browsers judge the dates by theirs
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mamoru console", Organization: []string{"mamoru"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CertValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("access: make a TLS certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("access: make a TLS key: %w", err)
	}
	if err := writeNew(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		return err
	}
	return writeNew(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeNew writes data to path, which must not exist, with mode, whole
// or not at all (atomicfile).
func writeNew(path string, data []byte, mode os.FileMode) error {
	if err := atomicfile.Write(path, data, atomicfile.Options{Mode: mode, New: true}); err != nil {
		return fmt.Errorf("access: write %s: %w", path, err)
	}
	return nil
}
