package evidence

import (
	"maps"
	"net/url"
	"slices"
	"strings"
)

// shorteners are URL shorteners: a link through one hides its
// destination until it is followed, which Rampart never does. Options
// can add more.
var shorteners = setOf("bit.ly", "bitly.com", "bit.do", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd", "v.gd",
	"buff.ly", "rebrand.ly", "cutt.ly", "shorturl.at", "rb.gy", "t.ly", "tiny.cc", "bl.ink", "lnkd.in", "s.id",
	"qrco.de", "urlz.fr", "x.co", "soo.gd", "clck.ru", "u.to", "shorte.st", "adf.ly", "tr.im", "db.tt",
	"amzn.to", "fb.me", "wp.me", "surl.li", "shorturl.asia", "tinu.be", "y2u.be", "1url.com", "short.gy",
	"urlr.me", "snip.ly", "po.st", "mcaf.ee", "ift.tt", "dlvr.it", "zpr.io", "lnk.bio", "linktr.ee", "han.gl", "me2.kr")

// redirectors are sites whose links forward elsewhere without naming the
// destination (click tracking, link wrapping): the host, or a domain the
// host is under.
var redirectors = setOf("ct.sendgrid.net", "list-manage.com", "urldefense.com", "urldefense.proofpoint.com",
	"safelinks.protection.outlook.com", "l.facebook.com", "lm.facebook.com", "l.instagram.com", "href.li",
	"t.umblr.com", "away.vk.com", "exit.sc", "anon.to", "mandrillapp.com", "mailgun.org", "rs6.net",
	"mlsend.com", "hubspotlinks.com", "awstrack.me", "trk.klclick.com", "email.mg")

// targetParams are query parameters in which redirectors name where they
// send the reader (Google's /url?q=, Facebook's l.php?u=, ...).
var targetParams = setOf("url", "u", "q", "r", "redirect", "redirect_uri", "redirect_url", "redir", "target",
	"dest", "destination", "link", "to", "goto", "out", "next", "continue", "return", "returnurl", "z")

func setOf(xs ...string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// classify marks a shortener's link, and a redirector's, with the target
// it names when it names one (in a parameter, or in its path: Google's
// /amp/s/host/path, "/redirect/https://...").
func (x *extractor) classify(u *URL, p *url.URL) {
	host := strings.TrimPrefix(u.Host, "www.")
	if shorteners[host] || x.short[host] || x.short[u.Host] {
		u.Redirect = "shortener"
		return
	}
	if t := namedTarget(p); t != "" {
		if tu, _, ok := normalizeURL(t); ok && tu.URL != u.URL {
			u.Redirect, u.Target = "redirector", tu.URL
			return
		}
	}
	for h := host; h != ""; {
		if redirectors[h] {
			u.Redirect = "redirector"
			return
		}
		_, rest, ok := strings.Cut(h, ".")
		if !ok || !strings.Contains(rest, ".") {
			break
		}
		h = rest
	}
}

// namedTarget returns the URL a link names as where it goes, or "".
// Parameters are looked at in the order of their names, so that a link
// naming two targets gives the same one every time.
func namedTarget(p *url.URL) string {
	query := p.Query()
	for _, k := range slices.Sorted(maps.Keys(query)) {
		if !targetParams[strings.ToLower(k)] {
			continue
		}
		for _, v := range query[k] {
			if lv := strings.ToLower(v); strings.HasPrefix(lv, "http://") || strings.HasPrefix(lv, "https://") ||
				strings.HasPrefix(lv, "hxxp") || strings.HasPrefix(lv, "www.") {
				if strings.HasPrefix(lv, "www.") {
					v = "http://" + v
				}
				return v
			}
		}
	}
	path := p.EscapedPath()
	if unesc, err := url.PathUnescape(path); err == nil {
		path = unesc
	}
	for _, s := range []string{"/http://", "/https://"} {
		if i := strings.Index(strings.ToLower(path), s); i >= 0 {
			return path[i+1:]
		}
	}
	if rest, ok := strings.CutPrefix(path, "/amp/s/"); ok && strings.Contains(rest, ".") {
		return "https://" + rest
	}
	return ""
}
