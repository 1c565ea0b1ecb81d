// goverify checks certificate material issued by istio-ca with Go's crypto/x509, the
// verifier Istio itself used: the chain must verify for any, server and client use, and the
// leaf must carry exactly the fields istio-ca's DESIGN.md "Certificates" promises.
//
// Usage: go run main.go DIR
// DIR is one key type's directory written by interop_issue. Standard library only; no network.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

var failures []string

func fail(format string, args ...interface{}) {
	failures = append(failures, fmt.Sprintf(format, args...))
}

func read(dir, name string) []byte {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		fmt.Fprintf(os.Stderr, "goverify: %v\n", err)
		os.Exit(2)
	}
	return b
}

func parseOne(dir, name string) *x509.Certificate {
	block, rest := pem.Decode(read(dir, name))
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		fmt.Fprintf(os.Stderr, "goverify: %s: expected exactly one CERTIFICATE block\n", name)
		os.Exit(2)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		fmt.Fprintf(os.Stderr, "goverify: %s: %v\n", name, err)
		os.Exit(2)
	}
	return cert
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func verify(label string, leaf *x509.Certificate, roots, inter *x509.CertPool, wantOK bool) {
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageAny, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
		if wantOK && err != nil {
			fail("%s: Verify(usage %d): %v", label, usage, err)
		}
		if !wantOK && err == nil {
			fail("%s: Verify(usage %d) succeeded, want failure", label, usage)
		}
	}
}

func checkLeaf(label string, leaf, issuer *x509.Certificate, spiffe, dns string, issuedAt time.Time, ttl time.Duration) {
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != spiffe {
		fail("%s: URI SANs %v, want exactly [%s]", label, leaf.URIs, spiffe)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != dns {
		fail("%s: DNS SANs %v, want [%s]", label, leaf.DNSNames, dns)
	}
	// An empty subject is the empty SEQUENCE.
	if !bytes.Equal(leaf.RawSubject, []byte{0x30, 0x00}) {
		fail("%s: subject %q, want empty", label, leaf.Subject.String())
	}
	if !leaf.BasicConstraintsValid || leaf.IsCA {
		fail("%s: basicConstraints valid=%v CA=%v, want CA:FALSE present", label, leaf.BasicConstraintsValid, leaf.IsCA)
	}
	if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment; leaf.KeyUsage != want {
		fail("%s: keyUsage %b, want digitalSignature|keyEncipherment (%b)", label, leaf.KeyUsage, want)
	}
	server, client := false, false
	for _, u := range leaf.ExtKeyUsage {
		server = server || u == x509.ExtKeyUsageServerAuth
		client = client || u == x509.ExtKeyUsageClientAuth
	}
	if !server || !client || len(leaf.ExtKeyUsage) != 2 {
		fail("%s: extKeyUsage %v, want serverAuth+clientAuth", label, leaf.ExtKeyUsage)
	}
	if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
		fail("%s: serial %x (%d bits), want positive and at most 128 bits", label, leaf.SerialNumber, leaf.SerialNumber.BitLen())
	}
	if leaf.SerialNumber.BitLen() < 64 {
		fail("%s: serial has only %d bits, want a random 128-bit serial", label, leaf.SerialNumber.BitLen())
	}
	if len(leaf.SubjectKeyId) == 0 {
		fail("%s: no subjectKeyIdentifier", label)
	}
	if !bytes.Equal(leaf.AuthorityKeyId, issuer.SubjectKeyId) || len(leaf.AuthorityKeyId) == 0 {
		fail("%s: authorityKeyIdentifier %x, want the issuer's SKID %x", label, leaf.AuthorityKeyId, issuer.SubjectKeyId)
	}
	if got, want := leaf.NotBefore, issuedAt.Add(-2*time.Minute); got.Sub(want) > 2*time.Second || want.Sub(got) > 2*time.Second {
		fail("%s: NotBefore %v, want issue time - 2m = %v", label, got, want)
	}
	if got := leaf.NotAfter.Sub(issuedAt); got > ttl+2*time.Second || got < ttl-2*time.Second {
		fail("%s: NotAfter is issue time + %v, want + %v", label, got, ttl)
	}
	for _, ext := range leaf.Extensions {
		switch {
		case ext.Id.Equal([]int{2, 5, 29, 15}) && !ext.Critical:
			fail("%s: keyUsage not critical", label)
		case ext.Id.Equal([]int{2, 5, 29, 19}) && !ext.Critical:
			fail("%s: basicConstraints not critical", label)
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: goverify DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	root := parseOne(dir, "root.pem")
	inter := parseOne(dir, "intermediate.pem")
	leaf := parseOne(dir, "leaf.pem")
	direct := parseOne(dir, "leaf-direct.pem")
	other := parseOne(dir, "other-root.pem")
	spiffe := strings.TrimSpace(string(read(dir, "spiffe_id")))
	dns := strings.TrimSpace(string(read(dir, "dns_name")))
	issued, err := strconv.ParseInt(strings.TrimSpace(string(read(dir, "issued_at"))), 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "goverify: issued_at: %v\n", err)
		os.Exit(2)
	}
	ttlSeconds, err := strconv.ParseInt(strings.TrimSpace(string(read(dir, "ttl_seconds"))), 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "goverify: ttl_seconds: %v\n", err)
		os.Exit(2)
	}
	issuedAt, ttl := time.Unix(issued, 0), time.Duration(ttlSeconds)*time.Second

	verify("leaf via intermediate", leaf, pool(root), pool(inter), true)
	verify("leaf issued by root", direct, pool(root), nil, true)
	verify("leaf against an unrelated root", leaf, pool(other), pool(inter), false)
	verify("leaf without its intermediate", leaf, pool(root), nil, false)
	checkLeaf("leaf.pem", leaf, inter, spiffe, dns, issuedAt, ttl)
	checkLeaf("leaf-direct.pem", direct, root, spiffe, dns, issuedAt, ttl)

	if !root.IsCA || !root.BasicConstraintsValid || root.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		fail("root: CA=%v keyUsage=%b, want CA:TRUE keyCertSign|cRLSign", root.IsCA, root.KeyUsage)
	}
	if len(root.Subject.Organization) != 1 || root.Subject.Organization[0] != "cluster.local" {
		fail("root: subject %q, want O=cluster.local", root.Subject.String())
	}
	if !inter.IsCA || inter.MaxPathLen != 0 || !inter.MaxPathLenZero {
		fail("intermediate: CA=%v pathlen=%d, want CA:TRUE pathlen:0", inter.IsCA, inter.MaxPathLen)
	}
	// The key written next to the leaf is PKCS#8 and belongs to it.
	keyPEM := read(dir, "key.pem")
	if block, _ := pem.Decode(keyPEM); block == nil || block.Type != "PRIVATE KEY" {
		fail("key.pem: want a PKCS#8 PRIVATE KEY block")
	} else if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		fail("key.pem: %v", err)
	}
	if _, err := tls.X509KeyPair(read(dir, "chain.pem"), keyPEM); err != nil {
		fail("chain.pem + key.pem do not form a TLS key pair: %v", err)
	}

	if len(failures) > 0 {
		for _, f := range failures {
			fmt.Println("FAIL:", f)
		}
		os.Exit(1)
	}
	fmt.Printf("goverify %s: OK (%s, verified for any/serverAuth/clientAuth, with and without intermediate)\n",
		filepath.Base(dir), spiffe)
}
