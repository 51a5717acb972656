package evidence

import (
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

var (
	// textURLRE finds links in text, defanged ones too: hxxp://, h**p://,
	// [:]//, [.] and (.) for dots. What follows the scheme runs to the
	// first character a URL cannot hold; trim cuts trailing punctuation.
	// Both are compiled at their first use, not at every start of the
	// program: the bounded repeats make large programs.
	textURLRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)\b(?:h(?:tt|xx|\*\*|__)ps?|ftp)(?:\[:\]|:)(?:\[/\]|/){2}[^\s<>"'` + "`" + `{}|\\^\x00-\x20\x7f]+` +
			`|\bwww(?:\.|\[\.\]|\(\.\))[a-z0-9-]+(?:(?:\.|\[\.\]|\(\.\))[a-z0-9-]+)+(?:[/?#:][^\s<>"'` + "`" + `{}|\\^\x00-\x20\x7f]*)?`)
	})
	emailRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)[a-z0-9._%+=-]{1,64}@[a-z0-9.-]{1,253}\.[a-z]{2,63}`)
	})
	// zeroWidth are characters spam puts inside words and links to break
	// filters; they are removed before links are looked for.
	zeroWidth = strings.NewReplacer("\u200b", "", "\u200c", "", "\u200d", "", "\u2060", "", "\ufeff", "", "\u00ad", "")
	// defang undoes the usual ways of writing a link so that it is not one.
	defang = strings.NewReplacer("[.]", ".", "(.)", ".", "{.}", ".", "[dot]", ".", "(dot)", ".", "{dot}", ".",
		"[:]", ":", "[/]", "/", "[://]", "://")
)

// text finds the links in plain text.
func (x *extractor) text(s, where string) {
	s = zeroWidth.Replace(s)
	for _, m := range textURLRE().FindAllString(s, -1) {
		m = trimURL(m)
		if strings.HasPrefix(strings.ToLower(m), "www") {
			m = "http://" + m
		}
		x.link(m, where)
		if x.full("links", len(x.urls)) {
			return
		}
	}
}

// trimURL cuts the punctuation a sentence puts after a link, and closing
// brackets the link did not open.
func trimURL(s string) string {
	for s != "" {
		c := s[len(s)-1]
		switch c {
		case '.', ',', ';', ':', '!', '?', '\'', '"', '*', '_':
			s = s[:len(s)-1]
			continue
		case ')', ']', '>':
			open := "([<"[strings.IndexByte(")]>", c)]
			if strings.Count(s, string(open)) < strings.Count(s, string(c)) {
				s = s[:len(s)-1]
				continue
			}
		}
		return s
	}
	return s
}

// link records a link found at where, with the target a redirector
// names.
func (x *extractor) link(raw, where string) {
	u, parsed, ok := normalizeURL(raw)
	if !ok {
		return
	}
	if old := x.urls[u.URL]; old != nil {
		old.Where = append(old.Where, where)
		old.Obfuscated = old.Obfuscated || u.Obfuscated
		return
	}
	if x.full("links", len(x.urls)) {
		return
	}
	u.Where = []string{where}
	x.classify(&u, parsed)
	x.urls[u.URL] = &u
	if u.Domain != "" {
		src := "url"
		if u.Redirect != "" {
			src = "redirector"
		}
		x.domain(u.Domain, src)
	}
	if u.Target != "" && where != "redirect" {
		x.link(u.Target, "redirect")
	}
}

// normalizeURL returns raw as a URL worth recording: an absolute http,
// https or ftp URL with a valid host, defanging undone, scheme and host
// in lower case, an international host in punycode, a numeric IPv4 host
// in dotted form, without its fragment.
func normalizeURL(raw string) (URL, *url.URL, bool) {
	var u URL
	raw = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1 // browsers drop them from links
		}
		return r
	}, strings.TrimSpace(raw))
	raw = strings.Trim(raw, "<>\"'")
	if i := strings.Index(raw, "//"); i > 0 && i < 12 {
		scheme := strings.ToLower(raw[:i])
		switch strings.TrimSuffix(strings.TrimSuffix(scheme, ":"), "[:]") {
		case "hxxp", "h**p", "h__p":
			raw, u.Obfuscated = "http://"+raw[i+2:], true
		case "hxxps", "h**ps", "h__ps":
			raw, u.Obfuscated = "https://"+raw[i+2:], true
		}
	}
	if d := defang.Replace(raw); d != raw {
		raw, u.Obfuscated = d, true
	}
	if len(raw) > 4096 {
		return u, nil, false
	}
	p, err := url.Parse(raw)
	if err != nil || p.Opaque != "" {
		return u, nil, false
	}
	p.Scheme = strings.ToLower(p.Scheme)
	if p.Scheme != "http" && p.Scheme != "https" && p.Scheme != "ftp" {
		return u, nil, false
	}
	host, obf, ok := normalizeHost(p.Hostname())
	if !ok {
		return u, nil, false
	}
	u.Obfuscated = u.Obfuscated || obf || p.User != nil // user@host hides the host
	hostport := host
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		hostport = "[" + host + "]"
	}
	if port := p.Port(); port != "" && !(port == "80" && p.Scheme == "http" || port == "443" && p.Scheme == "https") {
		hostport += ":" + port
	}
	p.Host = hostport
	p.Fragment, p.RawFragment = "", ""
	u.URL, u.Host, u.Domain = p.String(), host, registrable(host)
	return u, p, true
}

// normalizeHost returns a URL's host in lower case, IDN in punycode, an
// IPv4 address written as one number (decimal, hex or octal) in dotted
// form (obfuscated), or ok = false when it is not a host name.
func normalizeHost(h string) (host string, obfuscated, ok bool) {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "" {
		return "", false, false
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().WithZone("").String(), false, true
	}
	if a, ok := numericIPv4(h); ok {
		return a.String(), true, true
	}
	if !isASCII(h) {
		ascii, err := idna.Lookup.ToASCII(h)
		if err != nil {
			return "", false, false
		}
		h = ascii
	}
	if !validHostname(h) || !strings.Contains(h, ".") {
		return "", false, false
	}
	return h, false, true
}

// numericIPv4 reads a host written as one number: 3232235777, 0xC0A80101
// or 030052000401 is 192.168.1.1 to a browser.
func numericIPv4(h string) (netip.Addr, bool) {
	if h == "" || strings.Contains(h, ".") {
		return netip.Addr{}, false
	}
	n, err := strconv.ParseUint(h, 0, 32)
	if err != nil {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// validHostname reports whether h is a lower-case ASCII host name: labels
// of letters, digits, '-' and '_', 1 to 63 bytes each, 253 in all.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// registrable returns host's registrable domain (eTLD+1: the part a
// registrar sells), or "" for an address, a single label or a public
// suffix itself.
func registrable(host string) string {
	if !validHostname(host) || !strings.Contains(host, ".") {
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		return ""
	}
	return d
}

// normAddress returns an e-mail address in lower case, without angle
// brackets, or "" when it is not one.
func normAddress(a string) string {
	a = strings.ToLower(strings.Trim(strings.TrimSpace(a), "<>"))
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || len(a) > 254 || strings.ContainsAny(a, " \t\r\n<>\"") {
		return ""
	}
	host := strings.TrimSuffix(a[at+1:], ".")
	if strings.HasPrefix(host, "[") {
		if ad, err := netip.ParseAddr(strings.TrimPrefix(strings.Trim(host, "[]"), "ipv6:")); err == nil {
			return a[:at+1] + "[" + ad.String() + "]"
		}
		return ""
	}
	if !isASCII(host) {
		ascii, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return ""
		}
		host = ascii
	}
	if !validHostname(host) || !strings.Contains(host, ".") {
		return ""
	}
	return safeText(a[:at+1]+host, 254)
}
