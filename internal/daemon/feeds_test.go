package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/feed"
)

// selfSigned writes a certificate for 127.0.0.1 and its key under dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rampart feed test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	certFile, keyFile = filepath.Join(dir, "feed.crt"), filepath.Join(dir, "feed.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// TestSignedFeeds: a node serves its own bans in a signed feed over
// HTTPS; another node subscribed with trust "ban" enforces them, except
// the address it allowlists, and lifts one the feed no longer lists; a
// stale feed and one signed with another key are refused and counted.
func TestSignedFeeds(t *testing.T) {
	pubDir, subDir := t.TempDir(), t.TempDir()
	cert, key := selfSigned(t, pubDir)
	seed, pubKey, _ := feed.NewKey()
	signing := filepath.Join(pubDir, "signing.key")
	os.WriteFile(signing, []byte(seed+"\n"), 0o600)
	addr := freeAddr(t)
	pub := startHarness(t, pubDir, 3, fmt.Sprintf(`[feed]
listen = %q
cert_file = %q
key_file = %q
signing_key_file = %q
name = "rebels"
`, addr, cert, key, signing))
	ctx := context.Background()
	for _, ip := range []string{"203.0.113.7", "198.51.100.0/24", "192.0.2.9"} {
		if _, err := pub.client.Ban(ctx, BanRequest{IP: ip, DurationS: 3600}); err != nil {
			t.Fatal(err)
		}
	}

	// Bad feeds: stale, and signed by someone else.
	k, _ := feed.ParseKey([]byte(seed))
	staleBody, _ := feed.Sign(feed.Document{Publisher: "rebels", Generated: time.Now().Add(-2 * time.Hour), Expires: time.Now().Add(time.Hour)}, k)
	otherSeed, _, _ := feed.NewKey()
	ok2, _ := feed.ParseKey([]byte(otherSeed))
	forgedBody, _ := feed.Sign(feed.Document{Publisher: "rebels", Generated: time.Now(), Expires: time.Now().Add(time.Hour), Entries: []feed.Entry{{Target: "192.0.2.66"}}}, ok2)
	bad := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stale" {
			w.Write(staleBody)
		} else {
			w.Write(forgedBody)
		}
	}))
	defer bad.Close()
	badCA := filepath.Join(subDir, "bad-ca.pem")
	os.WriteFile(badCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: bad.Certificate().Raw}), 0o644)

	sub := startHarness(t, subDir, 3, fmt.Sprintf(`[allow]
entries = ["192.0.2.9"]
[feed]
subscribe = [
  { name = "rebels", url = "https://%s/feed", public_key = %q, trust = "ban", ca_file = %q, every = "1s" },
  { name = "stale", url = "%s/stale", public_key = %q, ca_file = %q, every = "1s" },
  { name = "forged", url = "%s/forged", public_key = %q, ca_file = %q, every = "1s" },
]
`, addr, pubKey, cert, bad.URL, pubKey, badCA, bad.URL, pubKey, badCA))
	st := sub.waitFor("the feed's bans", func(st Status) bool {
		return banned(st, "203.0.113.7") && banned(st, "198.51.100.0/24")
	})
	if banned(st, "192.0.2.9") || banned(st, "192.0.2.66") {
		t.Fatalf("banned an allowlisted or forged address: %+v", st.Active)
	}
	for _, b := range st.Active {
		if b.Origin != "feed:rebels" {
			t.Errorf("ban %s has origin %q", b.IP, b.Origin)
		}
	}
	sub.waitFor("the bad feeds refused", func(st Status) bool {
		n := map[string]FeedSubscriptionStatus{}
		for _, f := range st.Feeds {
			n[f.Name] = f
		}
		return n["rebels"].Refused >= 1 && n["stale"].Rejected >= 1 && n["forged"].Rejected >= 1 && n["stale"].Fetched.IsZero()
	})
	if _, err := pub.client.Unban(ctx, "203.0.113.7"); err != nil {
		t.Fatal(err)
	}
	sub.waitFor("the ban the feed dropped lifted", func(st Status) bool {
		return !banned(st, "203.0.113.7") && banned(st, "198.51.100.0/24")
	})
}
