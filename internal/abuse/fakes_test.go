package abuse

// Local stand-ins for the services reports go to, each speaking its
// documented protocol: request shapes, authentication, answers and rate
// limits. They record what they accepted, so tests assert what was sent.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/httpout"
)

// fakeAbuseIPDB plays https://api.abuseipdb.com/api/v2/report
// (https://docs.abuseipdb.com/#report-endpoint): POST, the key in the Key
// header, Accept: application/json, a form with ip (required, a public
// address), categories (required, comma-separated 1 to 23), comment (at
// most 1,024 characters kept), timestamp (optional, ISO 8601). One report
// per address per 15 minutes (429 naming the ip parameter); a daily limit
// answered with 429, Retry-After and X-RateLimit-* headers.
type fakeAbuseIPDB struct {
	*httptest.Server
	key string
	now func() time.Time

	mu       sync.Mutex
	accepted []url.Values         // reports taken
	last     map[string]time.Time // ip → last accepted
	limited  int                  // the next this many requests are over the daily limit
	answered map[int]int          // status → count
	seen     map[string]int       // ip → reports taken
}

func newFakeAbuseIPDB(t *testing.T, key string, now func() time.Time) *fakeAbuseIPDB {
	f := &fakeAbuseIPDB{key: key, now: now, last: map[string]time.Time{}, answered: map[int]int{}, seen: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAbuseIPDB) answer(w http.ResponseWriter, status int, body any) {
	f.answered[status]++
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func apiError(status int, detail, param string) map[string]any {
	e := map[string]any{"detail": detail, "status": status}
	if param != "" {
		e["source"] = map[string]string{"parameter": param}
	}
	return map[string]any{"errors": []any{e}}
}

func (f *fakeAbuseIPDB) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/report" {
		f.answer(w, http.StatusNotFound, apiError(404, "not found", ""))
		return
	}
	if r.Header.Get("Key") != f.key {
		f.answer(w, http.StatusUnauthorized, apiError(401, "Authentication failed. Your API key is either missing, incorrect, or revoked.", ""))
		return
	}
	if r.Header.Get("Accept") != "application/json" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		f.answer(w, http.StatusNotAcceptable, apiError(406, "Accept: application/json and a form body", ""))
		return
	}
	if f.limited > 0 {
		f.limited--
		w.Header().Set("Retry-After", "30")
		w.Header().Set("X-RateLimit-Limit", "1000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(f.now().Add(30*time.Second).Unix(), 10))
		f.answer(w, http.StatusTooManyRequests, apiError(429, "Daily rate limit of 1000 requests exceeded for this endpoint. See headers for additional details.", ""))
		return
	}
	if err := r.ParseForm(); err != nil {
		f.answer(w, http.StatusBadRequest, apiError(400, err.Error(), ""))
		return
	}
	ip := r.PostForm.Get("ip")
	a, err := netip.ParseAddr(ip)
	if err != nil || a.IsPrivate() || a.IsLoopback() {
		f.answer(w, http.StatusUnprocessableEntity, apiError(422, "The ip address must be a valid IPv4 or IPv6 address.", "ip"))
		return
	}
	cats := r.PostForm.Get("categories")
	if cats == "" {
		f.answer(w, http.StatusUnprocessableEntity, apiError(422, "The categories field is required.", "categories"))
		return
	}
	for _, c := range strings.Split(cats, ",") {
		if n, err := strconv.Atoi(c); err != nil || n < 1 || n > 23 {
			f.answer(w, http.StatusUnprocessableEntity, apiError(422, "Invalid category.", "categories"))
			return
		}
	}
	if ts := r.PostForm.Get("timestamp"); ts != "" {
		if _, err := time.Parse(time.RFC3339, ts); err != nil {
			f.answer(w, http.StatusUnprocessableEntity, apiError(422, "The timestamp must be ISO 8601.", "timestamp"))
			return
		}
	}
	if len(r.PostForm.Get("comment")) > 1024 {
		f.answer(w, http.StatusUnprocessableEntity, apiError(422, "comment too long", "comment"))
		return
	}
	if t, ok := f.last[ip]; ok && f.now().Sub(t) < 15*time.Minute {
		f.answer(w, http.StatusTooManyRequests, apiError(429, "You can only report the same IP address (`"+ip+"`) once in 15 minutes.", "ip"))
		return
	}
	f.last[ip] = f.now()
	f.seen[ip]++
	f.accepted = append(f.accepted, r.PostForm)
	f.answer(w, http.StatusOK, map[string]any{"data": map[string]any{"ipAddress": ip, "abuseConfidenceScore": 52}})
}

func (f *fakeAbuseIPDB) reports() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.accepted...)
}

// fakeNetcraft plays https://report.netcraft.com/api/v3/report/urls: POST
// a JSON object with email (the reporter's address), an optional reason
// and urls (a list of objects with url); the answer names the
// submission's uuid. An API key, when given, is a bearer token.
type fakeNetcraft struct {
	*httptest.Server
	key string

	mu   sync.Mutex
	urls map[string]int
	body []map[string]any
}

func newFakeNetcraft(t *testing.T, key string) *fakeNetcraft {
	f := &fakeNetcraft{key: key, urls: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bad := func(status int, msg string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]any{"message": msg, "details": []map[string]string{{"message": msg}}})
		}
		if r.Method != http.MethodPost || r.URL.Path != "/api/v3/report/urls" {
			bad(http.StatusNotFound, "not found")
			return
		}
		if f.key != "" && r.Header.Get("Authorization") != "Bearer "+f.key {
			bad(http.StatusUnauthorized, "invalid API key")
			return
		}
		if r.Header.Get("Content-Type") != "application/json" {
			bad(http.StatusUnsupportedMediaType, "JSON bodies only")
			return
		}
		var body struct {
			Email  string `json:"email"`
			Reason string `json:"reason"`
			URLs   []struct {
				URL string `json:"url"`
			} `json:"urls"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			bad(http.StatusBadRequest, "invalid JSON")
			return
		}
		if _, err := mail.ParseAddress(body.Email); err != nil || len(body.URLs) == 0 {
			bad(http.StatusBadRequest, "email and urls are required")
			return
		}
		f.mu.Lock()
		for _, u := range body.URLs {
			if pu, err := url.Parse(u.URL); err != nil || !pu.IsAbs() {
				f.mu.Unlock()
				bad(http.StatusBadRequest, "invalid url "+u.URL)
				return
			}
			f.urls[u.URL]++
		}
		f.body = append(f.body, map[string]any{"email": body.Email, "reason": body.Reason})
		f.mu.Unlock()
		var id [16]byte
		rand.Read(id[:])
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"message": "Successfully reported", "uuid": hex.EncodeToString(id[:])})
	}))
	t.Cleanup(f.Close)
	return f
}

// fakeRDAP plays, over https, IANA's bootstrap files (RFC 9224) and three RDAP servers
// (RFC 9082, 9083): rir1 holds 203.0.113.0/24 and sends 198.51.100.0/24
// on to rir2 with a redirect, as RIRs do for space another one holds;
// registry answers for the TLD "test" with the registrar's abuse
// contact nested in the registrar entity.
type fakeRDAP struct {
	*httptest.Server
	mu       sync.Mutex
	requests map[string]int
}

func newFakeRDAP(t *testing.T) *fakeRDAP {
	f := &fakeRDAP{requests: map[string]int{}}
	mux := http.NewServeMux()
	f.Server = httptest.NewTLSServer(mux) // RDAP is https; the client prefers an https server
	boot := func(services [][][]string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f.count(r.URL.Path)
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"version": "1.0", "publication": "2026-01-01T00:00:00Z",
				"description": "RDAP bootstrap file", "services": services})
		}
	}
	mux.Handle("GET /ipv4.json", boot([][][]string{
		{{"192.0.0.0/8", "198.0.0.0/8", "203.0.0.0/8"}, {"http://rdap.rir1.invalid/", f.URL + "/rir1/"}},
	}))
	mux.Handle("GET /ipv6.json", boot([][][]string{{{"2001:db8::/32"}, {f.URL + "/rir2/"}}}))
	mux.Handle("GET /dns.json", boot([][][]string{{{"test", "example"}, {f.URL + "/registry/"}}}))
	rdap := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/rdap+json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	vcard := func(fn, email string) []any {
		return []any{"vcard", []any{[]any{"version", map[string]any{}, "text", "4.0"}, []any{"fn", map[string]any{}, "text", fn},
			[]any{"email", map[string]any{"type": "work"}, "text", email}}}
	}
	notFound := map[string]any{"errorCode": 404, "title": "Not Found"}
	mux.HandleFunc("GET /rir1/ip/{addr}", func(w http.ResponseWriter, r *http.Request) {
		f.count(r.URL.Path)
		a, err := netip.ParseAddr(r.PathValue("addr"))
		switch {
		case err != nil:
			rdap(w, http.StatusBadRequest, map[string]any{"errorCode": 400})
		case netip.MustParsePrefix("198.51.100.0/24").Contains(a):
			http.Redirect(w, r, f.URL+"/rir2/ip/"+a.String(), http.StatusMovedPermanently)
		case netip.MustParsePrefix("203.0.113.0/24").Contains(a):
			rdap(w, http.StatusOK, map[string]any{"objectClassName": "ip network", "startAddress": "203.0.113.0", "endAddress": "203.0.113.255",
				"entities": []any{
					map[string]any{"objectClassName": "entity", "roles": []string{"registrant"}, "vcardArray": vcard("Example Hosting", "noc@hosting.test"),
						"entities": []any{map[string]any{"objectClassName": "entity", "roles": []string{"abuse"}, "vcardArray": vcard("Abuse", "Abuse@Hosting.test")}}},
				}})
		default:
			rdap(w, http.StatusNotFound, notFound)
		}
	})
	mux.HandleFunc("GET /rir2/ip/{addr}", func(w http.ResponseWriter, r *http.Request) {
		f.count(r.URL.Path)
		rdap(w, http.StatusOK, map[string]any{"objectClassName": "ip network", "entities": []any{
			map[string]any{"objectClassName": "entity", "roles": []string{"abuse"}, "vcardArray": vcard("Abuse", "abuse@isp.test")},
		}})
	})
	mux.HandleFunc("GET /registry/domain/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.count(r.URL.Path)
		switch r.PathValue("name") {
		case "phish-login.test", "parcel-fee.example", "parcel-news.example":
			rdap(w, http.StatusOK, map[string]any{"objectClassName": "domain", "ldhName": r.PathValue("name"), "entities": []any{
				map[string]any{"objectClassName": "entity", "roles": []string{"registrar"}, "vcardArray": vcard("Registrar Inc", "info@registrar.test"),
					"entities": []any{map[string]any{"objectClassName": "entity", "roles": []string{"abuse"},
						"vcardArray": vcard("Abuse", "abuse@registrar.test\r\nBcc: victim@evil.test")},
						map[string]any{"objectClassName": "entity", "roles": []string{"abuse"}, "vcardArray": vcard("Abuse", "domain-abuse@registrar.test")}}},
			}})
		default:
			rdap(w, http.StatusNotFound, notFound)
		}
	})
	t.Cleanup(f.Close)
	return f
}

func (f *fakeRDAP) count(path string) {
	f.mu.Lock()
	f.requests[path]++
	f.mu.Unlock()
}

func (f *fakeRDAP) hits(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[path]
}

// fakeReceiver is a webhook receiver: it checks each body's signature as
// docs/reporting.md tells receivers to, and answers what fail says (503
// to try again, 400 for a refusal) or 204.
type fakeReceiver struct {
	*httptest.Server
	secret []byte
	now    func() time.Time
	fail   func(n int) int // the status for the n-th request (from 1); 0: 204

	mu         sync.Mutex
	n          int
	deliveries map[string]int
	bodies     []WebhookBody
	badSig     int
}

func readAll(r io.Reader) []byte {
	b, _ := io.ReadAll(r)
	return b
}

func newFakeReceiver(t *testing.T, secret string, now func() time.Time) *fakeReceiver {
	f := &fakeReceiver{secret: []byte(secret), now: now, deliveries: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.n++
		body := readAll(r.Body)
		if err := httpout.Verify(f.secret, r.Header.Get(httpout.SignatureHeader), body, f.now(), 5*time.Minute); err != nil {
			f.badSig++
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if f.fail != nil {
			if st := f.fail(f.n); st != 0 {
				http.Error(w, fmt.Sprintf("status %d", st), st)
				return
			}
		}
		var b WebhookBody
		if err := json.Unmarshal(body, &b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.deliveries[r.Header.Get("X-Rampart-Delivery")]++
		f.bodies = append(f.bodies, b)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeReceiver) received() []WebhookBody {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]WebhookBody(nil), f.bodies...)
}
