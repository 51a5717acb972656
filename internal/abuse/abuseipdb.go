package abuse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/httpout"
)

// AbuseIPDB reports attacking and spamming addresses to AbuseIPDB's v2
// API (https://docs.abuseipdb.com): POST /api/v2/report, the key in the
// Key header, a form with ip, categories, comment and timestamp.
type AbuseIPDB struct {
	URL  string // https://api.abuseipdb.com/api/v2/report
	Key  string
	HTTP *httpout.Client
	// Categories by jail; Default for a jail not listed; Spam for mail
	// the trap caught.
	Categories    map[string][]int
	Default, Spam []int
}

var _ Reporter = (*AbuseIPDB)(nil)

func (*AbuseIPDB) Name() string { return "abuseipdb" }

func (*AbuseIPDB) Takes(kind string) bool { return kind == KindAttack || kind == KindSpam }

func (a *AbuseIPDB) Destination(context.Context, Item) (string, error) { return hostOf(a.URL), nil }

// form is the report as AbuseIPDB takes it. Its comment is built from the
// subject, redacted when it was queued, and cut to 1,000 bytes (AbuseIPDB
// keeps 1,024).
func (a *AbuseIPDB) form(it Item) url.Values {
	s := it.Subject
	cats := a.Default
	comment := ""
	switch it.Kind {
	case KindSpam:
		cats = a.Spam
		if m := s.Message; m != nil {
			comment = fmt.Sprintf("Sent spam to a mail trap: %d recipients, %d links. Reported by Rampart.", m.Recipients, len(m.URLs))
		}
	default:
		if c, ok := a.Categories[s.Jail]; ok {
			cats = c
		}
		comment = fmt.Sprintf("%s (jail %s, scenario %s). Reported by Rampart.", s.Reason, s.Jail, s.Scenario)
	}
	ids := make([]string, len(cats))
	for i, c := range cats {
		ids[i] = strconv.Itoa(c)
	}
	v := url.Values{}
	v.Set("ip", s.Addr)
	v.Set("categories", strings.Join(ids, ","))
	v.Set("comment", truncate(comment, 1000))
	if !s.First.IsZero() {
		v.Set("timestamp", s.First.UTC().Format(time.RFC3339))
	}
	return v
}

// abuseIPDBAnswer is AbuseIPDB's JSON answer, a success's or an error's.
type abuseIPDBAnswer struct {
	Data struct {
		IPAddress            string `json:"ipAddress"`
		AbuseConfidenceScore int    `json:"abuseConfidenceScore"`
	} `json:"data"`
	Errors []struct {
		Detail string `json:"detail"`
		Status int    `json:"status"`
		Source struct {
			Parameter string `json:"parameter"`
		} `json:"source"`
	} `json:"errors"`
}

func (a *AbuseIPDB) Send(ctx context.Context, it Item, _ string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, a.URL, strings.NewReader(a.form(it).Encode()))
	if err != nil {
		return "", Final(err)
	}
	req.Header.Set("Key", a.Key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.HTTP.Do(ctx, req)
	var ans abuseIPDBAnswer
	if resp != nil {
		json.Unmarshal(resp.Body, &ans)
	}
	var se *httpout.StatusError
	switch {
	case err == nil:
		return fmt.Sprintf("abuse confidence score %d", ans.Data.AbuseConfidenceScore), nil
	case errors.As(err, &se) && se.Status == http.StatusTooManyRequests:
		// The same address within 15 minutes is refused with a 429 that
		// names the ip parameter: it is reported already, not a reason to
		// slow down.
		for _, e := range ans.Errors {
			if e.Source.Parameter == "ip" {
				return "reported already within 15 minutes", nil
			}
		}
		return "", err
	case errors.As(err, &se) && se.Status == http.StatusUnprocessableEntity:
		return "", Final(err) // a bad address or category: no use trying again
	}
	return "", err
}

func (a *AbuseIPDB) Render(it Item) (string, error) {
	return fmt.Sprintf("POST %s\nKey: [the API key]\nAccept: application/json\nContent-Type: application/x-www-form-urlencoded\n\n%s\n",
		a.URL, a.form(it).Encode()), nil
}

func hostOf(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	return u.Host
}
