package usbmux

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/wire"
)

// PairRecord is what usbmuxd keeps per device after pairing: the
// certificates and keys of a lockdown session, and the escrow bag that
// lets mobilebackup2 start. The plist keys are the ones libimobiledevice,
// usbmuxd and go-ios use, so records are shared with those tools.
type PairRecord struct {
	DeviceCertificate []byte `plist:"DeviceCertificate"`
	HostCertificate   []byte `plist:"HostCertificate"`
	HostPrivateKey    []byte `plist:"HostPrivateKey"`
	RootCertificate   []byte `plist:"RootCertificate"`
	RootPrivateKey    []byte `plist:"RootPrivateKey"`
	HostID            string `plist:"HostID"`
	SystemBUID        string `plist:"SystemBUID"`
	WiFiMACAddress    string `plist:"WiFiMACAddress,omitempty"`
	EscrowBag         []byte `plist:"EscrowBag,omitempty"`
}

// maxPairRecord bounds a pair record; real ones are about 8 KiB.
const maxPairRecord = 256 << 10

// DecodePairRecord reads a pair record (binary or XML plist) and checks
// that it has what a session needs: HostID, the host certificate and key
// as a usable pair, and a device certificate to pin. A record that fails
// is pairing_invalid: the fix is to pair again.
func DecodePairRecord(data []byte) (*PairRecord, error) {
	rec, err := decodePairRecordData(data)
	if err != nil {
		return nil, err
	}
	if err := rec.check(); err != nil {
		return nil, err
	}
	return rec, nil
}

// decodePairRecordData decodes a record within our size and shape limits
// without checking its contents.
func decodePairRecordData(data []byte) (*PairRecord, error) {
	if len(data) > maxPairRecord {
		return nil, invalidRecord("%d bytes (limit %d)", len(data), maxPairRecord)
	}
	var rec PairRecord
	if err := wire.Decode(data, &rec); err != nil {
		return nil, invalidRecord("%w", err)
	}
	return &rec, nil
}

func invalidRecord(format string, args ...any) error {
	return cause.New(cause.PairingInvalid, fmt.Errorf("pair record: "+format, args...))
}

func (r *PairRecord) check() error {
	if r.HostID == "" {
		return invalidRecord("no HostID")
	}
	if len(r.HostCertificate) == 0 || len(r.HostPrivateKey) == 0 {
		return invalidRecord("no host certificate or key")
	}
	if _, err := r.hostKeyPair(); err != nil {
		return err
	}
	if _, err := r.deviceCertDER(); err != nil {
		return err
	}
	return nil
}

// Marshal encodes the record as the binary plist usbmuxd stores.
func (r *PairRecord) Marshal() ([]byte, error) {
	b, err := wire.Encode(r, wire.Binary)
	if err != nil {
		return nil, fmt.Errorf("pair record: %w", err)
	}
	return b, nil
}

// hostKeyPair is the client certificate of a lockdown TLS session. go-ios
// and pymobiledevice3 present the host certificate, libimobiledevice the
// root one; a device accepts either, and the host one is what its name
// says.
func (r *PairRecord) hostKeyPair() (tls.Certificate, error) {
	kp, err := tls.X509KeyPair(r.HostCertificate, r.HostPrivateKey)
	if err != nil {
		return tls.Certificate{}, invalidRecord("host certificate and key: %w", err)
	}
	return kp, nil
}

// deviceCertDER returns the DER of the device certificate that the device
// presents in TLS. Records hold it as PEM; a DER one is taken as is.
func (r *PairRecord) deviceCertDER() ([]byte, error) {
	if len(r.DeviceCertificate) == 0 {
		return nil, invalidRecord("no DeviceCertificate")
	}
	der := r.DeviceCertificate
	if b, _ := pem.Decode(r.DeviceCertificate); b != nil {
		if b.Type != "CERTIFICATE" {
			return nil, invalidRecord("DeviceCertificate is a PEM %q block, want CERTIFICATE", b.Type)
		}
		der = b.Bytes
	}
	// Parsing only checks the shape; the signature is never verified,
	// because records made by other tools are SHA-1 signed, which Go
	// rightly refuses to verify. The session pins these bytes instead.
	if _, err := x509.ParseCertificate(der); err != nil {
		return nil, invalidRecord("DeviceCertificate: %w", err)
	}
	return der, nil
}

// pinnedTLSConfig is the client side of a lockdown or service TLS session:
// it presents the host certificate and accepts the device only if it
// shows exactly the certificate in the pair record.
func (r *PairRecord) pinnedTLSConfig() (*tls.Config, error) {
	kp, err := r.hostKeyPair()
	if err != nil {
		return nil, err
	}
	pin, err := r.deviceCertDER()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		// Chain verification cannot work: the device certificate is
		// issued by our own root with no name, and other tools sign it
		// with SHA-1. VerifyConnection pins the exact bytes instead,
		// which is stronger than a chain would be.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("device presented no certificate")
			}
			if !bytes.Equal(cs.PeerCertificates[0].Raw, pin) {
				return errCertMismatch
			}
			return nil
		},
		// Present the host certificate whatever the device asks for. Go
		// would otherwise send none when the request names CAs that our
		// certificate does not chain to.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &kp, nil
		},
		MinVersion:             tls.VersionTLS12,
		SessionTicketsDisabled: true,
	}, nil
}

var errCertMismatch = errors.New("the device's certificate is not the one in the pair record")

// pairingRecord is the part of a record that Pair and ValidatePair send:
// no private keys ever leave the host.
func (r *PairRecord) pairingRecord() map[string]any {
	return map[string]any{
		"DeviceCertificate": r.DeviceCertificate,
		"HostCertificate":   r.HostCertificate,
		"HostID":            r.HostID,
		"RootCertificate":   r.RootCertificate,
		"SystemBUID":        r.SystemBUID,
	}
}

// parseDevicePublicKey reads lockdown's DevicePublicKey: an RSA key in
// PEM, PKCS#1 ("RSA PUBLIC KEY") on every device seen, PKIX accepted too.
func parseDevicePublicKey(b []byte) (*rsa.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, protocolError("DevicePublicKey is not PEM")
	}
	switch blk.Type {
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(blk.Bytes)
		if err != nil {
			return nil, protocolError("DevicePublicKey: %w", err)
		}
		return checkRSA(k)
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, protocolError("DevicePublicKey: %w", err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, protocolError("DevicePublicKey is a %T, want RSA", k)
		}
		return checkRSA(rk)
	default:
		return nil, protocolError("DevicePublicKey is a PEM %q block", blk.Type)
	}
}

// checkRSA refuses keys that would make certificate creation fail or take
// forever, or that no RSA implementation would use: devices use 1024
// or 2048 bits and exponent 65537.
func checkRSA(k *rsa.PublicKey) (*rsa.PublicKey, error) {
	if n := k.N.BitLen(); n < 1024 || n > 8192 {
		return nil, protocolError("DevicePublicKey of %d bits", n)
	}
	if k.E < 3 || k.E%2 == 0 {
		return nil, protocolError("DevicePublicKey with exponent %d", k.E)
	}
	return k, nil
}

// newPairRecord makes what the host sends in Pair: a root certificate, a
// host certificate and a device certificate for the device's public key,
// the way libimobiledevice and pymobiledevice3 do (empty names, serial 1,
// ten years, SHA-256 as every iOS since 4 accepts). Ours: go-ios's
// certificate code is unexported, and its Pair dials usbmuxd at the
// address in the environment.
func newPairRecord(devicePub *rsa.PublicKey, buid, wifiMAC string) (*PairRecord, error) {
	rootKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	hostKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	base := func(pub *rsa.PublicKey) *x509.Certificate {
		skid := sha1.Sum(x509.MarshalPKCS1PublicKey(pub))
		return &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{},
			NotBefore:             now.Add(-time.Minute),
			NotAfter:              now.AddDate(10, 0, 0),
			SignatureAlgorithm:    x509.SHA256WithRSA,
			BasicConstraintsValid: true,
			SubjectKeyId:          skid[:],
		}
	}
	rootTmpl := base(&rootKey.PublicKey)
	rootTmpl.IsCA = true
	rootTmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("root certificate: %w", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, err
	}
	leaf := func(pub *rsa.PublicKey) ([]byte, error) {
		t := base(pub)
		t.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		return x509.CreateCertificate(rand.Reader, t, root, pub, rootKey)
	}
	hostDER, err := leaf(&hostKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("host certificate: %w", err)
	}
	devDER, err := leaf(devicePub)
	if err != nil {
		return nil, fmt.Errorf("device certificate: %w", err)
	}
	return &PairRecord{
		DeviceCertificate: pemBlock("CERTIFICATE", devDER),
		HostCertificate:   pemBlock("CERTIFICATE", hostDER),
		HostPrivateKey:    pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(hostKey)),
		RootCertificate:   pemBlock("CERTIFICATE", rootDER),
		RootPrivateKey:    pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rootKey)),
		HostID:            newHostID(),
		SystemBUID:        buid,
		WiFiMACAddress:    wifiMAC,
	}, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// newHostID returns a random upper-case UUID, the form HostIDs take.
func newHostID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]))
}
