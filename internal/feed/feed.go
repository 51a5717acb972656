// Package feed is the signed feed Rampart nodes of different owners share
// over HTTPS: a publisher serves its decisions and indicators in a
// document signed with its Ed25519 key; a subscriber pins the publisher's
// public key, and rejects a feed whose signature does not verify, that is
// stale or dated in the future, that has expired, or that is larger than
// it accepts. What a subscriber does with the entries (and that its own
// allowlist wins) is the daemon's business.
package feed

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rampart-dev/rampart/internal/event"
)

// Document is what a feed says.
type Document struct {
	V         int       `json:"v"`
	Publisher string    `json:"publisher"`
	Generated time.Time `json:"generated"`
	Expires   time.Time `json:"expires"`
	Entries   []Entry   `json:"entries"`
	HotUsers  []HotUser `json:"hot_users,omitempty"`
}

// Entry is a ban the publisher has in force.
type Entry struct {
	Target   string    `json:"target"` // address or CIDR prefix
	End      time.Time `json:"end,omitzero"`
	Scenario string    `json:"scenario,omitempty"`
}

// HotUser is a user name the publisher sees sprayed.
type HotUser struct {
	User string    `json:"user"`
	End  time.Time `json:"end"`
}

// envelope is the document on the wire.
type envelope struct {
	Payload string `json:"payload"` // base64 of the document's JSON
	Key     string `json:"key"`     // base64 of the publisher's public key
	Sig     string `json:"sig"`     // base64 of the Ed25519 signature of the payload bytes
}

// Sign returns the signed feed of doc.
func Sign(doc Document, key ed25519.PrivateKey) ([]byte, error) {
	doc.V = 1
	p, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	return json.Marshal(envelope{
		Payload: base64.StdEncoding.EncodeToString(p),
		Key:     base64.StdEncoding.EncodeToString(pub),
		Sig:     base64.StdEncoding.EncodeToString(ed25519.Sign(key, p)),
	})
}

// ErrRejected wraps every reason a feed is refused.
var ErrRejected = errors.New("feed rejected")

func reject(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRejected, fmt.Sprintf(format, args...))
}

// Limits on a feed's entries and text.
const (
	MaxEntries = 2_000_000
	maxSkew    = 5 * time.Minute
)

// Verify checks a signed feed against the publisher's pinned key, and
// its dates against now: generated within maxAge and not in the future,
// not expired. Errors wrap ErrRejected. Entries that are malformed are
// dropped and counted; those that ended are dropped.
func Verify(data []byte, pub ed25519.PublicKey, now time.Time, maxAge time.Duration) (Document, int, error) {
	var env envelope
	var doc Document
	if err := json.Unmarshal(data, &env); err != nil {
		return doc, 0, reject("not a signed feed: %v", err)
	}
	k, err := base64.StdEncoding.DecodeString(env.Key)
	if err != nil || !pub.Equal(ed25519.PublicKey(k)) {
		return doc, 0, reject("signed with another key than the publisher's")
	}
	p, err1 := base64.StdEncoding.DecodeString(env.Payload)
	sig, err2 := base64.StdEncoding.DecodeString(env.Sig)
	if err1 != nil || err2 != nil || !ed25519.Verify(pub, p, sig) {
		return doc, 0, reject("the signature does not verify")
	}
	if err := json.Unmarshal(p, &doc); err != nil {
		return doc, 0, reject("payload: %v", err)
	}
	switch {
	case doc.V != 1:
		return doc, 0, reject("version %d", doc.V)
	case doc.Generated.After(now.Add(maxSkew)):
		return doc, 0, reject("generated %s, in the future", doc.Generated.Format(time.RFC3339))
	case now.Sub(doc.Generated) > maxAge:
		return doc, 0, reject("stale: generated %s, more than %s ago", doc.Generated.Format(time.RFC3339), maxAge)
	case !doc.Expires.After(now):
		return doc, 0, reject("expired at %s", doc.Expires.Format(time.RFC3339))
	case len(doc.Entries) > MaxEntries:
		return doc, 0, reject("%d entries, more than %d", len(doc.Entries), MaxEntries)
	}
	bad := 0
	entries := doc.Entries[:0]
	for _, e := range doc.Entries {
		if _, err := e.Prefix(); err != nil || len(e.Scenario) > 64 || !utf8.ValidString(e.Scenario) {
			bad++
			continue
		}
		if !e.End.IsZero() && !e.End.After(now) {
			continue
		}
		entries = append(entries, e)
	}
	doc.Entries = entries
	users := doc.HotUsers[:0]
	for _, u := range doc.HotUsers {
		if u.User == "" || len(u.User) > 64 || !utf8.ValidString(u.User) || !u.End.After(now) || u.End.Sub(now) > 7*24*time.Hour {
			bad++
			continue
		}
		users = append(users, u)
	}
	doc.HotUsers = users
	return doc, bad, nil
}

// Prefix is the entry's target.
func (e Entry) Prefix() (netip.Prefix, error) {
	p, err := event.ParseTarget(e.Target)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad target: %w", err)
	}
	return p, nil
}

// Fetch GETs a feed, refusing one larger than maxBytes.
func Fetch(ctx context.Context, c *http.Client, url string, maxBytes int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if resp.ContentLength > maxBytes {
		return nil, reject("%d bytes, more than %d", resp.ContentLength, maxBytes)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if int64(len(b)) > maxBytes {
		return nil, reject("more than %d bytes", maxBytes)
	}
	return b, nil
}

// Handler serves the signed feed of what doc returns at GET /feed. A
// document is signed at most once a second, however many subscribers ask.
func Handler(doc func() Document, key ed25519.PrivateKey) http.Handler {
	var cache struct {
		at   time.Time
		body []byte
	}
	mu := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /feed", func(w http.ResponseWriter, r *http.Request) {
		mu <- struct{}{}
		if time.Since(cache.at) > time.Second || cache.body == nil {
			b, err := Sign(doc(), key)
			if err != nil {
				<-mu
				http.Error(w, "signing failed", http.StatusInternalServerError)
				return
			}
			cache.at, cache.body = time.Now(), b
		}
		body := cache.body
		<-mu
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	return mux
}

// NewKey returns a new signing key's seed, base64, for a key file.
func NewKey() (seed string, pub string, err error) {
	p, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	return base64.StdEncoding.EncodeToString(k.Seed()), base64.StdEncoding.EncodeToString(p), nil
}

// ParseKey reads a signing key file's seed.
func ParseKey(b []byte) (ed25519.PrivateKey, error) {
	s, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(s) != ed25519.SeedSize {
		return nil, errors.New("not a base64 Ed25519 seed (rampart fleet feed-keygen writes one)")
	}
	return ed25519.NewKeyFromSeed(s), nil
}

// ParsePublicKey reads a publisher's public key, base64.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%q is not a base64 Ed25519 public key", s)
	}
	return ed25519.PublicKey(b), nil
}
