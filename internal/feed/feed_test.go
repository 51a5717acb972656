package feed

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func keys(t *testing.T) (ed25519.PrivateKey, ed25519.PublicKey) {
	seed, pub, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey([]byte(seed + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k, p
}

// TestVerify: a good feed verifies and loses its ended and malformed
// entries; another key, a tampered payload, a stale, future or expired
// feed is rejected.
func TestVerify(t *testing.T) {
	k, pub := keys(t)
	other, _ := keys(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	doc := Document{Publisher: "rebels", Generated: now, Expires: now.Add(10 * time.Minute), Entries: []Entry{
		{Target: "203.0.113.7", End: now.Add(time.Hour), Scenario: "ip-failures"},
		{Target: "198.51.100.0/24", End: now.Add(time.Hour)},
		{Target: "192.0.2.1", End: now.Add(-time.Second)},
		{Target: "not-an-address"},
		{Target: "2001:db8::/48"},
	}, HotUsers: []HotUser{{User: "admin", End: now.Add(time.Hour)}, {User: "", End: now.Add(time.Hour)}}}
	data, err := Sign(doc, k)
	if err != nil {
		t.Fatal(err)
	}
	got, bad, err := Verify(data, pub, now.Add(time.Minute), 5*time.Minute)
	if err != nil || bad != 2 || len(got.Entries) != 3 || len(got.HotUsers) != 1 || got.Publisher != "rebels" {
		t.Fatalf("verify: %v, %d bad, %+v", err, bad, got)
	}
	otherData, _ := Sign(doc, other)
	tampered := strings.Replace(string(data), `"payload":"`, `"payload":"eyJ2Ijox`, 1)
	for name, c := range map[string]struct {
		data []byte
		at   time.Time
	}{
		"another key": {otherData, now},
		"tampered":    {[]byte(tampered), now},
		"not JSON":    {[]byte("<html>"), now},
		"stale":       {data, now.Add(6 * time.Minute)},
		"future":      {data, now.Add(-10 * time.Minute)},
		"expired":     {mustSign(t, Document{Generated: now, Expires: now.Add(time.Second)}, k), now.Add(2 * time.Second)},
		"empty":       {data[:0], now},
	} {
		if _, _, err := Verify(c.data, pub, c.at, 5*time.Minute); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: %v, want ErrRejected", name, err)
		}
	}
}

func mustSign(t *testing.T, d Document, k ed25519.PrivateKey) []byte {
	b, err := Sign(d, k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFetchOverTLS: the handler's feed fetched over HTTPS verifies; an
// oversized one is refused, whether it says its length or not.
func TestFetchOverTLS(t *testing.T) {
	k, pub := keys(t)
	now := time.Now()
	h := Handler(func() Document {
		return Document{Publisher: "p", Generated: time.Now(), Expires: time.Now().Add(time.Minute), Entries: []Entry{{Target: "203.0.113.9", End: now.Add(time.Hour)}}}
	}, k)
	ts := httptest.NewTLSServer(h)
	defer ts.Close()
	data, err := Fetch(context.Background(), ts.Client(), ts.URL+"/feed", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if doc, _, err := Verify(data, pub, time.Now(), time.Minute); err != nil || len(doc.Entries) != 1 {
		t.Fatalf("%v %+v", err, doc)
	}
	if _, err := Fetch(context.Background(), ts.Client(), ts.URL+"/feed", 100); !errors.Is(err, ErrRejected) {
		t.Errorf("oversized: %v", err)
	}
	chunked := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		w.Write([]byte(strings.Repeat("x", 5000)))
	}))
	defer chunked.Close()
	if _, err := Fetch(context.Background(), chunked.Client(), chunked.URL, 1000); !errors.Is(err, ErrRejected) {
		t.Errorf("oversized without a length: %v", err)
	}
}
