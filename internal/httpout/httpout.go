// Package httpout is Rampart's one way to call a web service: the abuse
// reporters (AbuseIPDB, Netcraft, RDAP) and the webhooks of reports and
// actions. It sets timeouts and a User-Agent, reads at most a bounded
// answer, refuses redirects unless asked (a POST that follows one can hand
// an API key to another host), and turns answers into errors that say
// whether to try again, and when: 429 and Retry-After, 5xx, timeouts.
//
// It also signs and verifies webhook bodies (HMAC-SHA256, see Sign).
package httpout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxBody is the most of an answer that is read.
const MaxBody = 1 << 20

// Client calls web services. The zero value is not usable: use New.
type Client struct {
	hc        *http.Client
	userAgent string
}

// Options configure a Client.
type Options struct {
	Timeout   time.Duration // per request, answer included; zero: 20 s
	UserAgent string
	// Redirects is how many redirects a GET follows (RDAP servers send
	// clients on to the registry that holds the answer); a POST never
	// follows one. Only to https, unless the request was http itself.
	Redirects int
	// Transport replaces http.DefaultTransport's (tests: a loopback CA).
	Transport http.RoundTripper
}

// New returns a Client.
func New(o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Second
	}
	if o.UserAgent == "" {
		o.UserAgent = "rampart"
	}
	hc := &http.Client{Timeout: o.Timeout, Transport: o.Transport}
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if via[0].Method != http.MethodGet || len(via) > o.Redirects {
			return http.ErrUseLastResponse
		}
		if req.URL.Scheme != "https" && via[0].URL.Scheme == "https" {
			return fmt.Errorf("redirect from https to %s refused", req.URL.Scheme)
		}
		return nil
	}
	return &Client{hc: hc, userAgent: o.UserAgent}
}

// Response is a service's answer: its status, headers and (at most
// MaxBody bytes of) body.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends req and returns the answer when its status is 2xx. Any other
// answer is a *StatusError; a failure to reach the service is returned as
// is (Temporary says it is worth trying again). The request's URL, not its
// headers, is named in errors: keys travel in headers.
func (c *Client) Do(ctx context.Context, req *http.Request) (*Response, error) {
	req = req.WithContext(ctx)
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			err = ue.Unwrap() // net/http's *url.Error repeats the URL, query and all
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, redactURL(req), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", req.Method, redactURL(req), err)
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return r, &StatusError{Status: resp.StatusCode, RetryAfter: RetryAfter(resp.Header, time.Now()),
			Body: snippet(body), URL: redactURL(req)}
	}
	return r, nil
}

// redactURL names a request's URL without its query (an API may take a
// key there).
func redactURL(req *http.Request) string {
	u := *req.URL
	u.RawQuery, u.User = "", nil
	return u.String()
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// StatusError is an answer other than 2xx.
type StatusError struct {
	Status     int
	RetryAfter time.Duration // from Retry-After; 0 when absent
	Body       string        // the start of the answer, whitespace folded
	URL        string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s: %d %s", e.URL, e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// RateLimited reports whether err is a 429 answer, and how long the
// service asked to wait (0 when it did not say).
func RateLimited(err error) (time.Duration, bool) {
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusTooManyRequests {
		return se.RetryAfter, true
	}
	return 0, false
}

// Temporary reports whether trying again later may succeed: a network
// failure or timeout, or a 408, 425, 429 or 5xx answer. Any other
// answer (a 4xx: bad key, bad request) will fail again.
func Temporary(err error) bool {
	if err == nil {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		switch {
		case se.Status == http.StatusRequestTimeout, se.Status == http.StatusTooEarly, se.Status == http.StatusTooManyRequests:
			return true
		case se.Status >= 500:
			return true
		}
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// RetryAfter reads a Retry-After header: seconds, or an HTTP date (then
// the time from now to it). Absent, malformed or in the past: 0. At most
// a day.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		d = time.Duration(min(n, 86400)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), 24*time.Hour)
}
