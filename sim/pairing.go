package sim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/backupd/backupd/proto/wire"
)

// PairRecord is what usbmuxd stores per device and what lockdown's Pair
// request carries. Field names are the plist keys libimobiledevice and
// go-ios read.
type PairRecord struct {
	DeviceCertificate []byte `plist:"DeviceCertificate"`
	HostCertificate   []byte `plist:"HostCertificate"`
	HostID            string `plist:"HostID"`
	HostPrivateKey    []byte `plist:"HostPrivateKey,omitempty"`
	RootCertificate   []byte `plist:"RootCertificate"`
	RootPrivateKey    []byte `plist:"RootPrivateKey,omitempty"`
	SystemBUID        string `plist:"SystemBUID"`
	WiFiMACAddress    string `plist:"WiFiMACAddress,omitempty"`
	EscrowBag         []byte `plist:"EscrowBag,omitempty"`
}

// Marshal encodes the record as the binary plist usbmuxd hands out.
func (p PairRecord) Marshal() ([]byte, error) { return wire.Encode(p, wire.Binary) }

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// devicePublicKeyPEM is the form lockdown's DevicePublicKey takes: a PKCS#1
// public key in PEM, which libimobiledevice reads with
// PEM_read_bio_RSAPublicKey.
func devicePublicKeyPEM(k *rsa.PublicKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(k)})
}

func newKey() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) }

func subjectKeyID(pub *rsa.PublicKey) []byte {
	sum := sha1.Sum(x509.MarshalPKCS1PublicKey(pub))
	return sum[:]
}

// issueCert signs a certificate for pub with the root key. A nil parent
// makes a self-signed root.
func issueCert(serial int64, pub *rsa.PublicKey, parent *x509.Certificate, signer *rsa.PrivateKey, isCA bool) ([]byte, *x509.Certificate, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		SubjectKeyId:          subjectKeyID(pub),
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return der, c, nil
}

// newPairRecord plays the host's part of pairing for a device that starts
// out paired: it makes a root, a host certificate and a device certificate
// for the device's key, the way a computer does when the user taps Trust.
func newPairRecord(deviceKey *rsa.PublicKey, hostID, buid string, escrow []byte) (PairRecord, error) {
	rootKey, err := newKey()
	if err != nil {
		return PairRecord{}, err
	}
	hostKey, err := newKey()
	if err != nil {
		return PairRecord{}, err
	}
	rootDER, root, err := issueCert(0, &rootKey.PublicKey, nil, rootKey, true)
	if err != nil {
		return PairRecord{}, err
	}
	hostDER, _, err := issueCert(0, &hostKey.PublicKey, root, rootKey, false)
	if err != nil {
		return PairRecord{}, err
	}
	devDER, _, err := issueCert(0, deviceKey, root, rootKey, false)
	if err != nil {
		return PairRecord{}, err
	}
	return PairRecord{
		DeviceCertificate: pemCert(devDER),
		HostCertificate:   pemCert(hostDER),
		HostID:            hostID,
		HostPrivateKey:    pemKey(hostKey),
		RootCertificate:   pemCert(rootDER),
		RootPrivateKey:    pemKey(rootKey),
		SystemBUID:        buid,
		EscrowBag:         escrow,
	}, nil
}

// newUUID returns an upper-case random UUID, the form HostID and BUID take.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]))
}
