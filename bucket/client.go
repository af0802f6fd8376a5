// Package bucket is everything that reads or sets up a bucket: the S3 client
// a configuration describes, where an incident's objects live in it, the
// error classes that say what a person must fix, bucket setup and the device's
// and the managers' console's least-privilege policies for installers, and
// the managers' clips (list, get, verify, share, legal hold, delete).
package bucket

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"mamoru/config"
	"mamoru/outbox"
)

// NewClient connects to the bucket's server as the configuration says. It
// does not touch the network.
func NewClient(s config.Storage) (*minio.Core, error) {
	tr, err := transport(s)
	if err != nil {
		return nil, err
	}
	c, err := minio.NewCore(s.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(s.AccessKey.Reveal(), s.SecretKey.Reveal(), ""),
		Secure:    s.Secure,
		Region:    s.Region,
		Transport: tr,
		// The uploader retries with its own backoff, which shutdown ends.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket: storage.endpoint %q: %w", s.Endpoint, err)
	}
	return c, nil
}

func transport(s config.Storage) (http.RoundTripper, error) {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		// The clips are video: compressing them costs the Pi CPU for nothing.
		DisableCompression: true,
	}
	if s.Secure {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if s.CAFile != "" {
			pool, err := config.CertPool(s.CAFile)
			if err != nil {
				return nil, fmt.Errorf("bucket: storage.ca_file: %w", err)
			}
			tr.TLSClientConfig.RootCAs = pool
		}
	}
	return tr, nil
}

// ObjectDir is where an incident's objects live in the bucket:
// <prefix>/<store>/<device>/<YYYY>/<MM>/<DD>/<incident-id>. It is the
// place the manifest names (Object), which the device chose when it wrote
// the manifest; a manifest from before there was one gets
// outbox.ObjectKey's in loc.
func ObjectDir(prefix string, m outbox.Manifest, loc *time.Location) string {
	if m.Object != "" {
		return path.Join(prefix, m.Object)
	}
	return path.Join(prefix, outbox.ObjectKey(m, loc))
}

// Problem is a failure that retrying will not fix: the configuration or the
// server's setup is wrong. Fix says what to do.
type Problem struct {
	Code string // the S3 error code, or "TLS"
	Fix  string
	Err  error
}

func (p *Problem) Error() string { return fmt.Sprintf("%v (%s)", p.Err, p.Fix) }
func (p *Problem) Unwrap() error { return p.Err }

// fixes are the S3 error codes no retry cures, with what to do about them.
var fixes = map[string]string{
	"InvalidAccessKeyId":           "the access key is not known to the server: check storage.access_key_file or " + config.EnvAccessKey,
	"SignatureDoesNotMatch":        "the secret key is wrong: check storage.secret_key_file or " + config.EnvSecretKey,
	"NoSuchBucket":                 "the bucket does not exist: check storage.bucket, or run 'mamoru storage init'",
	"AccessDenied":                 "the credentials may not write here: apply the policy 'mamoru storage init' prints to this device's user",
	"AllAccessDisabled":            "the account is disabled",
	"InvalidBucketName":            "check storage.bucket",
	"AuthorizationHeaderMalformed": "check storage.region",
	"InvalidRegion":                "check storage.region",
}

// Classify turns an error from the server into a *Problem when retrying
// cannot help, into an *Exists when a write-once upload found its object
// already there, and returns other errors (network, 5xx) as they are.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var p *Problem
	if errors.As(err, &p) {
		return err
	}
	var exists *Exists
	if errors.As(err, &exists) {
		return err
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code == "PreconditionFailed" || resp.StatusCode == http.StatusPreconditionFailed) {
		return &Exists{Object: resp.Key, Err: err}
	}
	if fix, ok := fixes[errorCode(err)]; ok {
		return &Problem{Code: errorCode(err), Fix: fix, Err: err}
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var notTLS tls.RecordHeaderError
	switch {
	case errors.As(err, &unknownCA):
		return &Problem{Code: "TLS", Fix: "the server's certificate is signed by an unknown authority: set storage.ca_file to its CA", Err: err}
	case errors.As(err, &hostname):
		return &Problem{Code: "TLS", Fix: "the server's certificate is not for storage.endpoint's host", Err: err}
	case errors.As(err, &invalid):
		return &Problem{Code: "TLS", Fix: "the server's certificate is not valid (expired, or the clock is wrong)", Err: err}
	case errors.As(err, &notTLS):
		return &Problem{Code: "TLS", Fix: "the server does not speak TLS: use its https port, or set storage.secure = false (with storage.allow_plain_http = true for a server that is not this machine)", Err: err}
	}
	return err
}

// Exists is the server's refusal to write Object because it is already in
// the bucket: every upload of a device is write-once (If-None-Match: *),
// and the server answered 412 Precondition Failed. Whether that is this
// device's own earlier write, retried, or someone else's, only the caller
// can tell.
type Exists struct {
	Object string
	Err    error
}

func (e *Exists) Error() string {
	return fmt.Sprintf("%s is already in the bucket, and uploads never replace an object: %v", e.Object, e.Err)
}
func (e *Exists) Unwrap() error { return e.Err }

// errorCode is the S3 error code in err, wrapped or not, or "".
func errorCode(err error) string {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp.Code
	}
	return ""
}

// IsNotFound reports whether err says the object or upload does not exist.
func IsNotFound(err error) bool {
	code := errorCode(err)
	return code == "NoSuchKey" || code == "NoSuchUpload" || code == "NotFound"
}

func IsAccessDenied(err error) bool { return errorCode(err) == "AccessDenied" }
