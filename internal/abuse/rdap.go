package abuse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/httpout"
	"github.com/rampart-dev/rampart/internal/store"
)

// RDAP finds abuse contacts (RFC 9082, 9083): IANA's bootstrap files
// (RFC 9224) name the RDAP server for an address or a top-level domain;
// its answer's entity with the "abuse" role (at any depth: a registrar's
// abuse contact sits inside the registrar) has the address in its vCard.
// Answers are kept in the store for TTL, "none named" too.
type RDAP struct {
	Bootstrap string // the bootstrap files' directory: https://data.iana.org/rdap/
	HTTP      *httpout.Client
	Store     *store.Store
	TTL       time.Duration
	now       func() time.Time

	mu   sync.Mutex
	boot map[string]bootFile // ipv4.json, ipv6.json, dns.json
}

type bootFile struct {
	services [][2][]string // [entries, URLs]
	fetched  time.Time
}

// ErrNoContact means RDAP names no abuse contact.
var ErrNoContact = errors.New("RDAP names no abuse contact")

// AddressContact returns the abuse contact of the network holding a.
func (r *RDAP) AddressContact(ctx context.Context, a netip.Addr) (string, error) {
	a = a.Unmap()
	bits := 24
	file := "ipv4.json"
	if a.Is6() {
		bits, file = 48, "ipv6.json"
	}
	nw, _ := a.Prefix(bits)
	return r.contact(ctx, "ip:"+nw.String(), file, func(services [][2][]string) []string {
		best, bestBits := []string(nil), -1
		for _, s := range services {
			for _, e := range s[0] {
				if p, err := netip.ParsePrefix(e); err == nil && p.Contains(a) && p.Bits() > bestBits {
					best, bestBits = s[1], p.Bits()
				}
			}
		}
		return best
	}, "ip/"+a.String())
}

// DomainContact returns the abuse contact of the registrar of domain (a
// registrable domain).
func (r *RDAP) DomainContact(ctx context.Context, domain string) (string, error) {
	domain = strings.ToLower(domain)
	return r.contact(ctx, "domain:"+domain, "dns.json", func(services [][2][]string) []string {
		best, bestLen := []string(nil), 0
		for _, s := range services {
			for _, e := range s[0] {
				e = strings.ToLower(e)
				if (domain == e || strings.HasSuffix(domain, "."+e)) && len(e) > bestLen {
					best, bestLen = s[1], len(e)
				}
			}
		}
		return best
	}, "domain/"+domain)
}

func (r *RDAP) contact(ctx context.Context, key, file string, pick func([][2][]string) []string, path string) (string, error) {
	now := nowOf(r.now)
	if c, at, ok, err := r.Store.AbuseContact(ctx, key); err == nil && ok && now.Sub(at) < r.TTL {
		if c == "" {
			return "", Final(ErrNoContact)
		}
		return c, nil
	}
	services, err := r.bootstrap(ctx, file)
	if err != nil {
		return "", err
	}
	bases := pick(services)
	if len(bases) == 0 {
		r.Store.SaveAbuseContact(ctx, key, "", now)
		return "", Final(fmt.Errorf("%w: no RDAP server for %s in %s", ErrNoContact, path, file))
	}
	base := bases[0]
	for _, b := range bases {
		if strings.HasPrefix(b, "https://") {
			base = b
			break
		}
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return "", Final(err)
	}
	req.Header.Set("Accept", "application/rdap+json")
	resp, err := r.HTTP.Do(ctx, req)
	var se *httpout.StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		r.Store.SaveAbuseContact(ctx, key, "", now)
		return "", Final(fmt.Errorf("%w: %s: not found", ErrNoContact, path))
	}
	if err != nil {
		return "", err
	}
	var obj rdapEntity
	if err := json.Unmarshal(resp.Body, &obj); err != nil {
		return "", fmt.Errorf("RDAP %s: %w", path, err)
	}
	c := obj.abuse(0)
	if err := r.Store.SaveAbuseContact(ctx, key, c, now); err != nil {
		return "", err
	}
	if c == "" {
		return "", Final(fmt.Errorf("%w: %s", ErrNoContact, path))
	}
	return c, nil
}

// bootstrap returns a bootstrap file's services, fetched once a day.
func (r *RDAP) bootstrap(ctx context.Context, file string) ([][2][]string, error) {
	r.mu.Lock()
	b, ok := r.boot[file]
	r.mu.Unlock()
	if ok && nowOf(r.now).Sub(b.fetched) < 24*time.Hour {
		return b.services, nil
	}
	u, err := url.JoinPath(r.Bootstrap, file)
	if err != nil {
		return nil, Final(err)
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, Final(err)
	}
	resp, err := r.HTTP.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("RDAP bootstrap: %w", err)
	}
	var doc struct {
		Services [][][]string `json:"services"`
	}
	if err := json.Unmarshal(resp.Body, &doc); err != nil {
		return nil, fmt.Errorf("RDAP bootstrap %s: %w", file, err)
	}
	var services [][2][]string
	for _, s := range doc.Services {
		if len(s) >= 2 {
			services = append(services, [2][]string{s[0], s[1]})
		}
	}
	r.mu.Lock()
	if r.boot == nil {
		r.boot = map[string]bootFile{}
	}
	r.boot[file] = bootFile{services: services, fetched: nowOf(r.now)}
	r.mu.Unlock()
	return services, nil
}

// rdapEntity is an RDAP object or entity: what matters here is the roles,
// the vCard and the entities inside.
type rdapEntity struct {
	Roles    []string        `json:"roles"`
	VCard    json.RawMessage `json:"vcardArray"`
	Entities []rdapEntity    `json:"entities"`
}

// abuse returns the e-mail address of the shallowest entity with the
// abuse role, or "".
func (e *rdapEntity) abuse(depth int) string {
	if depth > 8 {
		return ""
	}
	for _, sub := range e.Entities {
		for _, role := range sub.Roles {
			if strings.EqualFold(role, "abuse") {
				if a := vcardEmail(sub.VCard); a != "" {
					return a
				}
			}
		}
	}
	for i := range e.Entities {
		if a := e.Entities[i].abuse(depth + 1); a != "" {
			return a
		}
	}
	return ""
}

// vcardEmail returns the first valid address of a jCard's email
// properties (RFC 7095: ["vcard", [[name, params, type, value], ...]]).
// The address travels into a mail's envelope and header, so it must be
// a plain address: no name, no control characters, no spaces.
func vcardEmail(raw json.RawMessage) string {
	var card []json.RawMessage
	if json.Unmarshal(raw, &card) != nil || len(card) != 2 {
		return ""
	}
	var props [][]json.RawMessage
	if json.Unmarshal(card[1], &props) != nil {
		return ""
	}
	for _, p := range props {
		if len(p) < 4 {
			continue
		}
		var name, value string
		if json.Unmarshal(p[0], &name) != nil || !strings.EqualFold(name, "email") || json.Unmarshal(p[3], &value) != nil {
			continue
		}
		if a := plainAddress(value); a != "" {
			return a
		}
	}
	return ""
}

// plainAddress returns s as a bare lower-case address, or "" when it is
// not one.
func plainAddress(s string) string {
	s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "mailto:"))
	if s == "" || len(s) > 254 || strings.ContainsAny(s, " \t\r\n<>\",;()\\") {
		return ""
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return ""
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || !strings.Contains(s[at:], ".") {
		return ""
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e {
			return ""
		}
	}
	return strings.ToLower(s)
}
