package abuse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/rampart-dev/rampart/internal/httpout"
)

// Netcraft reports the links trapped mail advertised to Netcraft's report
// API (https://report.netcraft.com/api/v3): POST /report/urls with a JSON
// body naming the reporter's address (which Netcraft credits), a reason
// and the URLs; an API key, when there is one, as a bearer token.
type Netcraft struct {
	URL   string // https://report.netcraft.com/api/v3/report/urls
	Email string
	Key   string // optional
	HTTP  *httpout.Client
}

var _ Reporter = (*Netcraft)(nil)

func (*Netcraft) Name() string { return "netcraft" }

func (*Netcraft) Takes(kind string) bool { return kind == KindURL }

func (n *Netcraft) Destination(context.Context, Item) (string, error) { return hostOf(n.URL), nil }

type netcraftURL struct {
	URL string `json:"url"`
}

type netcraftReport struct {
	Email  string        `json:"email"`
	Reason string        `json:"reason"`
	URLs   []netcraftURL `json:"urls"`
}

func (n *Netcraft) body(it Item) ([]byte, error) {
	reason := "Advertised in spam sent to a mail trap"
	if m := it.Subject.Message; m != nil {
		reason = fmt.Sprintf("Advertised in spam sent to a mail trap by %s on %s", m.Client, m.Received.UTC().Format("2006-01-02 15:04 MST"))
	}
	return json.Marshal(netcraftReport{Email: n.Email, Reason: reason, URLs: []netcraftURL{{it.Subject.URL}}})
}

func (n *Netcraft) Send(ctx context.Context, it Item, _ string) (string, error) {
	body, err := n.body(it)
	if err != nil {
		return "", Final(err)
	}
	h := http.Header{"Accept": {"application/json"}}
	if n.Key != "" {
		h.Set("Authorization", "Bearer "+n.Key)
	}
	resp, err := postJSON(ctx, n.HTTP, n.URL, body, h)
	if err != nil {
		return "", err
	}
	var ans struct {
		Message string `json:"message"`
		UUID    string `json:"uuid"`
	}
	json.Unmarshal(resp.Body, &ans)
	return "submission " + ans.UUID, nil
}

func (n *Netcraft) Render(it Item) (string, error) {
	body, err := n.body(it)
	auth := ""
	if n.Key != "" {
		auth = "Authorization: Bearer [the API key]\n"
	}
	return fmt.Sprintf("POST %s\nContent-Type: application/json\n%s\n%s\n", n.URL, auth, body), err
}

// postJSON posts a JSON body with more headers and returns the answer.
func postJSON(ctx context.Context, hc *httpout.Client, url string, body []byte, h http.Header) (*httpout.Response, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, Final(err)
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	return hc.Do(ctx, req)
}
