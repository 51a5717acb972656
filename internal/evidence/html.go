package evidence

import (
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/net/html"
)

// urlAttrs are the attributes that hold links, by where the Result says
// they were found. The tokenizer decodes entities in attribute values
// (&#104;ttp, &amp;), so an entity-obfuscated link reads as the browser
// reads it.
var urlAttrs = map[string]string{
	"href": "href", "src": "src", "background": "src", "poster": "src", "data": "src",
	"action": "action", "formaction": "action",
}

// inline are the elements whose text runs on with their neighbours': a
// link split by <span></span> or <wbr> is one link to the reader.
var inline = map[string]bool{"a": true, "span": true, "b": true, "i": true, "u": true, "em": true, "strong": true,
	"font": true, "wbr": true, "small": true, "big": true, "sub": true, "sup": true, "s": true, "code": true}

var (
	cssURLRE     = regexp.MustCompile(`(?i)url\(\s*['"]?([^'")\s]+)`)
	metaRefresRE = regexp.MustCompile(`(?i)url\s*=\s*['"]?([^'"\s]+)`)
)

// html finds the links of an HTML part: in the attributes that hold
// links (resolved against <base href>), in meta refreshes, in CSS url()s,
// mailto: addresses, and in the text a reader sees. attached is
// "attachment" for an HTML file attached to the message.
func (x *extractor) html(s, attached string) {
	z := html.NewTokenizer(strings.NewReader(s))
	z.SetMaxBuf(4 << 20)
	var base *url.URL
	var text strings.Builder
	where := func(w string) string { return firstOf(attached, w) }
	flush := func() {
		x.text(text.String(), where("text"))
		text.Reset()
	}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			flush()
			return
		case html.TextToken:
			if text.Len() < 4<<20 {
				text.Write(z.Text())
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			if !inline[tag] {
				flush()
			}
			if tt == html.EndTagToken {
				continue
			}
			var httpEquiv, content string
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				key, val := string(k), string(v)
				switch {
				case key == "style":
					x.css(val, where("src"))
				case key == "http-equiv":
					httpEquiv = strings.ToLower(val)
				case key == "content":
					content = val
				case tag == "base" && key == "href":
					if b, err := url.Parse(strings.TrimSpace(val)); err == nil && b.IsAbs() {
						base = b
					}
				case urlAttrs[key] != "":
					if key == "data" && tag != "object" {
						continue
					}
					x.attrURL(val, base, where(urlAttrs[key]))
				}
			}
			if httpEquiv == "refresh" {
				if m := metaRefresRE.FindStringSubmatch(content); m != nil {
					x.attrURL(m[1], base, where("meta"))
				}
			}
			if tag == "style" {
				// The tokenizer hands <style>'s body over as text.
				if z.Next() == html.TextToken {
					x.css(string(z.Text()), where("src"))
				}
			}
		}
		if x.full("links", len(x.urls)) {
			return
		}
	}
}

// attrURL records a link from an attribute: absolute, resolved against
// base, or protocol-relative (//host/path); a mailto: address is a
// contact.
func (x *extractor) attrURL(v string, base *url.URL, where string) {
	v = strings.TrimSpace(zeroWidth.Replace(v))
	if v == "" || strings.HasPrefix(v, "#") {
		return
	}
	lower := strings.ToLower(v)
	switch {
	case strings.HasPrefix(lower, "mailto:"):
		addr, _, _ := strings.Cut(v[len("mailto:"):], "?")
		if u, err := url.PathUnescape(addr); err == nil {
			addr = u
		}
		for _, a := range strings.Split(addr, ",") {
			if n := normAddress(a); n != "" {
				x.address("contact", n)
			}
		}
		return
	case strings.HasPrefix(v, "//"):
		v = "http:" + v
	case !strings.Contains(lower, "://") && !strings.Contains(lower, "[:]//"):
		if base == nil {
			return // relative, and nothing to resolve it against
		}
		rel, err := url.Parse(v)
		if err != nil {
			return
		}
		v = base.ResolveReference(rel).String()
	}
	x.link(v, where)
}

// css records the links of CSS url()s.
func (x *extractor) css(s, where string) {
	for _, m := range cssURLRE.FindAllStringSubmatch(s, 100) {
		if strings.Contains(m[1], "://") || strings.HasPrefix(m[1], "//") {
			x.attrURL(m[1], nil, where)
		}
	}
}
