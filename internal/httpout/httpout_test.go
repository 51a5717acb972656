package httpout

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDo(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("User-Agent") != "rampart-test" {
				w.WriteHeader(400)
			}
			w.Write([]byte(strings.Repeat("x", MaxBody+10)))
		case "/slow-down":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"errors":[{"detail":"Daily rate limit exceeded"}]}`))
		case "/bad":
			http.Error(w, "bad key", http.StatusUnauthorized)
		case "/broken":
			w.WriteHeader(http.StatusBadGateway)
		case "/moved":
			http.Redirect(w, r, srv.URL+"/ok", http.StatusFound)
		case "/moving":
			http.Redirect(w, r, srv.URL+"/moved", http.StatusFound)
		}
	}))
	defer srv.Close()
	c := New(Options{UserAgent: "rampart-test", Redirects: 1})
	ctx := context.Background()
	get := func(path string) (*Response, error) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path+"?key=SECRET", nil)
		return c.Do(ctx, req)
	}
	r, err := get("/ok")
	if err != nil || len(r.Body) != MaxBody {
		t.Fatalf("ok: %v, %d bytes read", err, len(r.Body))
	}
	_, err = get("/slow-down")
	if d, ok := RateLimited(err); !ok || d != 7*time.Second || !Temporary(err) {
		t.Errorf("429: %v (%v, %v)", err, d, ok)
	}
	if _, err = get("/bad"); Temporary(err) || err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "bad key") {
		t.Errorf("401: %v", err)
	}
	if _, err = get("/broken"); !Temporary(err) {
		t.Errorf("502 is worth another try: %v", err)
	}
	if r, err = get("/moved"); err != nil || len(r.Body) != MaxBody {
		t.Errorf("one redirect followed: %v", err)
	}
	var se *StatusError
	if _, err = get("/moving"); !errors.As(err, &se) || se.Status != http.StatusFound {
		t.Errorf("a second redirect is not followed: %v", err)
	}
	post, _ := http.NewRequest(http.MethodPost, srv.URL+"/moved", nil)
	if _, err = c.Do(ctx, post); !errors.As(err, &se) || se.Status != http.StatusFound {
		t.Errorf("a POST never follows a redirect: %v", err)
	}
	srv.Close()
	if _, err = get("/ok"); err == nil || !Temporary(err) || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("service down: %v (temporary %v)", err, Temporary(err))
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"120":                           2 * time.Minute,
		"-5":                            0,
		"999999":                        24 * time.Hour,
		"Sun, 01 Mar 2026 12:00:30 GMT": 30 * time.Second,
		"Sun, 01 Mar 2026 11:00:00 GMT": 0,
		"soon":                          0,
	} {
		h := http.Header{}
		if v != "" {
			h.Set("Retry-After", v)
		}
		if got := RetryAfter(h, now); got != want {
			t.Errorf("Retry-After %q = %v, want %v", v, got, want)
		}
	}
}

func TestSignVerify(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"a":1}`)
	now := time.Unix(1_800_000_000, 0)
	h := Sign(secret, now, body)
	// Python's hmac.new(b"s3cret", b'1800000000.{"a":1}', hashlib.sha256).hexdigest()
	if h != "t=1800000000,v1=476d445fc5d734bcaf69961f0de38cb8c2ec42450829655895ca5e064c0765c9" {
		t.Fatalf("header %q", h)
	}
	if err := Verify(secret, h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("a good signature: %v", err)
	}
	for name, err := range map[string]error{
		"other secret": Verify([]byte("other"), h, body, now, time.Minute),
		"other body":   Verify(secret, h, []byte(`{"a":2}`), now, time.Minute),
		"replayed":     Verify(secret, h, body, now.Add(time.Hour), 5*time.Minute),
		"garbage":      Verify(secret, "v1=zz", body, now, time.Minute),
	} {
		if err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}
