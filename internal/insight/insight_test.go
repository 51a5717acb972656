package insight_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/evidence"
	"github.com/rampart-dev/rampart/internal/geo"
	"github.com/rampart-dev/rampart/internal/geo/geotest"
	"github.com/rampart-dev/rampart/internal/insight"
	"github.com/rampart-dev/rampart/internal/store"
)

var update = flag.Bool("update", false, "rewrite golden files")

// t0 is the seeded data's first hour.
var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// geoDB writes small country and ASN databases covering the seeded
// attackers, and opens them.
func geoDB(t *testing.T) *geo.DB {
	t.Helper()
	country := geotest.WriteCountry(t, map[string]string{
		"198.51.100.0/24": "NL", "203.0.113.0/24": "CN", "192.0.2.0/25": "US", "2001:db8:bad::/48": "DE",
	})
	asn := geotest.WriteASN(t,
		geotest.AS{Number: 64500, Org: "Example Hosting", Networks: []string{"198.51.100.0/24", "2001:db8:bad::/48"}},
		geotest.AS{Number: 64501, Org: "Far Away Telecom", Networks: []string{"203.0.113.0/24"}},
	)
	db, err := geo.Open(country, asn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// dataset is what one host saw: events, decisions, captured mail and the
// abuse reports it queued.
type dataset struct {
	events    []event.Event
	decisions []event.Decision
	captures  []store.Quarantined
	reports   []store.Report
}

// spam is a trapped message as spammers write them: a Reply-To elsewhere,
// links in HTML (one defanged, one through a shortener), a mailto.
func spam(from, replyTo string, links ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Prize Desk <%s>\r\nReply-To: %s\r\nTo: you@example.net\r\nSubject: You won\r\n", from, replyTo)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Claim now:</p>")
	for _, l := range links {
		fmt.Fprintf(&b, "<a href=%q>here</a> ", l)
	}
	b.WriteString("<p>Questions? <a href=\"mailto:claims@winner-prize.example\">write</a></p></body></html>\r\n")
	return []byte(b.String())
}

// report is a report queued at t0+at, in state.
func report(at time.Duration, reporter, kind, target, state string) store.Report {
	return store.Report{Reporter: reporter, Kind: kind, Target: target, State: state, Subject: []byte("{}"), Created: t0.Add(at)}
}

func fail(at time.Duration, jail, service, addr, user string, kind event.Kind) event.Event {
	return event.Event{Time: t0.Add(at), Jail: jail, Service: service, Kind: kind, Addr: netip.MustParseAddr(addr), User: user}
}

func banOf(at time.Duration, jail, target, scenario string) event.Decision {
	p, err := netip.ParsePrefix(target)
	if err != nil {
		p = event.AddrPrefix(netip.MustParseAddr(target))
	}
	return event.Decision{Target: p, Action: event.Ban, Start: t0.Add(at), Duration: time.Hour, Scenario: scenario, Reason: "test", Jail: jail, Origin: "local"}
}

// hostA: an SSH brute force from NL and CN, a mail spray, trap captures.
func hostA() dataset {
	var d dataset
	for i := range 6 {
		d.events = append(d.events, fail(time.Duration(i)*time.Minute, "sshd", "sshd", "198.51.100.7", "root", event.AuthFailure))
	}
	for i, u := range []string{"admin", "oracle", "test", "ubuntu"} {
		d.events = append(d.events, fail(70*time.Minute+time.Duration(i)*time.Minute, "sshd", "sshd", "203.0.113."+fmt.Sprint(10+i), u, event.UnknownUser))
	}
	for i := range 5 {
		d.events = append(d.events, fail(3*time.Hour+time.Duration(i)*time.Minute, "postfix", "postfix", "192.0.2.50", "info@example.org", event.AuthFailure))
	}
	d.events = append(d.events, fail(3*time.Hour, "postfix", "postfix", "192.0.2.200", "sales@example.org", event.RecipientUnknown))
	d.decisions = []event.Decision{
		banOf(5*time.Minute, "sshd", "198.51.100.7", "ip-failures"),
		banOf(73*time.Minute, "sshd", "203.0.113.0/24", "prefix"),
		banOf(3*time.Hour+4*time.Minute, "postfix", "192.0.2.50", "ip-failures"),
	}
	d.captures = []store.Quarantined{
		{QueueID: "A1", Received: t0.Add(4 * time.Hour), Client: netip.MustParseAddr("203.0.113.99"), Helo: "mx.spam.example", Account: "info", MailFrom: "promo@spam.example", RcptTo: []string{"a@example.net", "b@example.net"}, Size: 2048,
			Raw: spam("promo@spam.example", "claims@winner-prize.example", "https://cheap-watches.example/buy?id=1", "hxxp://cheap-watches[.]example/track", "https://bit.ly/3xWatch")},
		{QueueID: "A2", Received: t0.Add(4*time.Hour + time.Minute), Client: netip.MustParseAddr("203.0.113.99"), Helo: "mx.spam.example", Account: "info", MailFrom: "promo@spam.example", RcptTo: []string{"c@example.net"}, Size: 1024,
			Raw: spam("promo@spam.example", "claims@winner-prize.example", "https://cheap-watches.example/buy?id=2", "https://login.bank-secure.example.co.uk/verify")},
	}
	d.reports = []store.Report{
		report(6*time.Minute, "abuseipdb", "attack", "198.51.100.7", store.ReportSent),
		report(3*time.Hour+5*time.Minute, "abuseipdb", "attack", "192.0.2.50", store.ReportReview),
		report(4*time.Hour+time.Minute, "netcraft", "url", "https://cheap-watches.example/buy?id=1", store.ReportSent),
		report(4*time.Hour+time.Minute, "netcraft", "url", "https://bit.ly/3xWatch", store.ReportFailed),
		report(4*time.Hour+time.Minute, "webhook", "message", "message 1 A1", store.ReportSent),
		report(4*time.Hour+2*time.Minute, "webhook", "message", "message 2 A2", store.ReportPending),
	}
	return d
}

// hostB: the same NL attacker, an IPv6 one, a dovecot jail, one capture.
func hostB() dataset {
	var d dataset
	for i := range 4 {
		d.events = append(d.events, fail(30*time.Minute+time.Duration(i)*time.Minute, "sshd", "sshd", "198.51.100.7", "root", event.AuthFailure))
	}
	for i := range 3 {
		d.events = append(d.events, fail(2*time.Hour+time.Duration(i)*time.Minute, "dovecot", "dovecot", "2001:db8:bad::"+fmt.Sprint(i+1), "=cmd@evil", event.AuthFailure))
	}
	d.decisions = []event.Decision{
		banOf(34*time.Minute, "sshd", "198.51.100.7", "ip-failures"),
		banOf(2*time.Hour+2*time.Minute, "dovecot", "2001:db8:bad::3", "user-spray"),
	}
	d.captures = []store.Quarantined{
		{QueueID: "B1", Received: t0.Add(5 * time.Hour), Client: netip.MustParseAddr("198.51.100.7"), Helo: "=cmd|' /C calc'!A0", Account: "sales", MailFrom: "", RcptTo: []string{"x@example.com"}, Size: 512,
			Raw: spam("=HYPERLINK(\"http://evil.example\")@spam.example", "claims@winner-prize.example", "https://cheap-watches.example/buy?id=1")},
	}
	d.reports = []store.Report{
		report(35*time.Minute, "abuseipdb", "attack", "198.51.100.7", store.ReportSent),
		report(2*time.Hour+3*time.Minute, "abuseipdb", "attack", "2001:db8:bad::3", store.ReportRejected),
		report(5*time.Hour+time.Minute, "netcraft", "url", "https://cheap-watches.example/buy?id=1", store.ReportDryRun),
	}
	return d
}

// seed records datasets in a fresh store as the daemon would: through a
// Counter flushed into the hourly aggregates, decisions into the history,
// captures into the quarantine.
func seed(t *testing.T, loc insight.Locator, name string, sets ...dataset) insight.Source {
	t.Helper()
	ctx := context.Background()
	var opts []store.Option
	if loc != nil {
		// As the daemon's store: decisions and captures placed when kept.
		opts = append(opts, store.WithLocator(func(a netip.Addr) store.Place {
			i := loc.Lookup(a)
			return store.Place{Country: i.Country, ASN: i.ASN, Org: i.Org}
		}))
	}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), name), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var c insight.Counter
	for _, d := range sets {
		for _, ev := range d.events {
			c.Observe(ev, 1)
		}
		c.Decided(d.decisions)
		if _, err := st.RecordDecisions(ctx, d.decisions); err != nil {
			t.Fatal(err)
		}
		for _, m := range d.captures {
			id, err := st.Quarantine(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			// Read for evidence as the daemon reads it.
			env := evidence.Envelope{Client: m.Client, Helo: m.Helo, MailFrom: m.MailFrom, RcptTo: m.RcptTo, Received: m.Received}
			res := evidence.Extract(m.Raw, env, evidence.Options{})
			var inds []store.Indicator
			for _, i := range res.Indicators(env) {
				inds = append(inds, store.Indicator(i))
			}
			if _, err := st.SaveExtraction(ctx, id, m.Received, m.Received, []byte("{}"), inds); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range d.reports {
			// Each host reports a target once in its dedup period; the
			// union store holds both hosts' reports, so none is a
			// duplicate here (a negative period finds none).
			if _, err := st.EnqueueReport(ctx, r, -100*365*24*time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		// One flush per dataset: the union store gets rows added twice.
		if err := st.AddHourly(ctx, c.Flush(loc)); err != nil {
			t.Fatal(err)
		}
	}
	return insight.Source{Name: name, Store: st}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func render(t *testing.T, r *insight.Report) (text, js, csv []byte) {
	t.Helper()
	var a, b, c bytes.Buffer
	if err := r.WriteText(&a); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteCSV(&c); err != nil {
		t.Fatal(err)
	}
	return a.Bytes(), b.Bytes(), c.Bytes()
}

func TestReportGolden(t *testing.T) {
	loc := geoDB(t)
	src := seed(t, loc, "host-a.db", hostA(), hostB())
	ctx := context.Background()
	r, err := insight.Build(ctx, []insight.Source{src}, insight.Options{}, loc)
	if err != nil {
		t.Fatal(err)
	}
	text, js, csv := render(t, r)
	golden(t, "report.txt", text)
	golden(t, "report.json", js)
	golden(t, "report.csv", csv)

	// The trap's clients were placed when their messages were kept: a
	// report without the databases places them the same.
	r, err = insight.Build(ctx, []insight.Source{src}, insight.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := render(t, r); !bytes.Equal(got, text) {
		t.Errorf("a report without the geo databases differs:\n%s", got)
	}
	// Messages kept before places were stored are placed at report time.
	old := seed(t, nil, "old.db", dataset{captures: hostA().captures, reports: hostA().reports}, dataset{captures: hostB().captures, reports: hostB().reports})
	hourly, err := src.Store.Hourly(ctx, store.HourlyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Store.AddHourly(ctx, hourly); err != nil {
		t.Fatal(err)
	}
	r, err = insight.Build(ctx, []insight.Source{{Name: "host-a.db", Store: old.Store}}, insight.Options{}, loc)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := render(t, r); !bytes.Equal(got, text) {
		t.Errorf("a report of unplaced messages placed at report time differs:\n%s", got)
	}

	// One jail, over two hours, the top 2 of each table.
	r, err = insight.Build(ctx, []insight.Source{src}, insight.Options{Jail: "sshd", Since: t0, Until: t0.Add(2 * time.Hour), Top: 2}, loc)
	if err != nil {
		t.Fatal(err)
	}
	text, _, _ = render(t, r)
	golden(t, "report-sshd.txt", text)
}

// TestMergeEqualsUnion: the report of two stores merged is the report of
// one store that saw everything both saw.
func TestMergeEqualsUnion(t *testing.T) {
	loc := geoDB(t)
	a := seed(t, loc, "a.db", hostA())
	b := seed(t, loc, "b.db", hostB())
	u := seed(t, loc, "union.db", hostA(), hostB())
	ctx := context.Background()
	for _, opt := range []insight.Options{
		{},
		{Jail: "sshd"},
		{Since: t0.Add(time.Hour), Until: t0.Add(5 * time.Hour)},
		{Since: t0.Add(4 * time.Hour)}, // the trap's messages and the reports about them
		{Top: 1},
	} {
		merged, err := insight.Build(ctx, []insight.Source{a, b}, opt, loc)
		if err != nil {
			t.Fatal(err)
		}
		union, err := insight.Build(ctx, []insight.Source{u}, opt, loc)
		if err != nil {
			t.Fatal(err)
		}
		if merged.Failures+merged.Bans == 0 && len(merged.Reports) == 0 {
			t.Fatalf("%+v: an empty report proves nothing: %+v", opt, merged)
		}
		if opt.Until.IsZero() && (merged.Trap == nil || len(merged.Trap.Domains) == 0 || len(merged.Trap.URLs) == 0 || len(merged.Trap.Indicators) == 0) {
			t.Fatalf("%+v: no evidence in the merged report: %+v", opt, merged.Trap)
		}
		merged.Stores, union.Stores = nil, nil
		if !reflect.DeepEqual(merged, union) {
			mj, _ := json.MarshalIndent(merged, "", " ")
			uj, _ := json.MarshalIndent(union, "", " ")
			t.Errorf("%+v: merged report differs from the union's:\n%s\n---\n%s", opt, mj, uj)
		}
	}
}

func TestCounterBounds(t *testing.T) {
	c := insight.Counter{MaxEntries: 50}
	for i := range 1000 {
		c.Observe(event.Event{Time: t0, Jail: "sshd", Service: "sshd", Kind: event.AuthFailure,
			Addr: netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), User: fmt.Sprintf("user%d", i)}, 1)
	}
	// Successes are not counted at all.
	c.Observe(event.Event{Time: t0, Jail: "sshd", Kind: event.AuthSuccess, Addr: netip.MustParseAddr("192.0.2.1")}, 1)
	if c.Dropped() == 0 {
		t.Fatal("nothing dropped past the bound")
	}
	rows := c.Flush(nil)
	var total int64
	entries := 0
	for _, r := range rows {
		if r.Dim == store.DimTotal {
			total += r.Failures
		}
		if r.Dim == store.DimUser {
			entries++
		}
	}
	if total != 1000 {
		t.Fatalf("total failures = %d, want every one of 1000 counted", total)
	}
	if entries > 50 {
		t.Fatalf("%d user rows past a bound of 50 entries", entries)
	}
	if rows := c.Flush(nil); len(rows) != 0 {
		t.Fatalf("second flush = %d rows, want none", len(rows))
	}
}

// FlushSeq gives the rows Flush returns, in the store's key order, made
// as they are read; nil when nothing was counted.
func TestCounterFlushSeq(t *testing.T) {
	fill := func() *insight.Counter {
		c := &insight.Counter{}
		for i := range 3000 {
			c.Observe(event.Event{Time: t0.Add(time.Duration(i%7) * time.Hour), Jail: []string{"sshd", "postfix"}[i%2], Service: "sshd", Kind: event.AuthFailure,
				Addr: netip.AddrFrom4([4]byte{byte(1 + i%50), 51, byte(i >> 8), byte(i)}), User: fmt.Sprintf("user%d", i%300)}, 1+i%3)
		}
		return c
	}
	want := fill().Flush(countryByFirstByte{})
	c := fill()
	var got []store.HourlyRow
	for r := range c.FlushSeq(countryByFirstByte{}) {
		got = append(got, r)
	}
	if len(want) < 1000 || !reflect.DeepEqual(got, want) {
		t.Fatalf("FlushSeq gave %d rows, Flush %d: not the same rows in the same order", len(got), len(want))
	}
	// Every failure counted once in each address dimension, and in the totals.
	sum := map[string]int64{}
	for _, r := range got {
		sum[r.Dim] += r.Failures
	}
	var observed int64
	for i := range 3000 {
		observed += int64(1 + i%3)
	}
	for _, dim := range []string{store.DimTotal, store.DimCountry, store.DimASN, store.DimPrefix, store.DimUser} {
		if sum[dim] != observed {
			t.Errorf("%s rows hold %d failures, want %d", dim, sum[dim], observed)
		}
	}
	// The store's key order; ASes by number, IPv6 networks after IPv4 ones.
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		c := cmp.Or(a.Hour.Compare(b.Hour), strings.Compare(a.Jail, b.Jail), strings.Compare(a.Dim, b.Dim))
		byText := a.Dim != store.DimASN && (a.Dim != store.DimPrefix || !strings.Contains(a.Key+b.Key, ":"))
		if c > 0 || c == 0 && byText && a.Key >= b.Key {
			t.Fatalf("row %d %v before row %d %v", i-1, a, i, b)
		}
	}
	if c.FlushSeq(nil) != nil || c.Flush(nil) != nil {
		t.Fatal("rows from a Counter just flushed")
	}
	n := 0
	for range fill().FlushSeq(nil) {
		if n++; n == 10 {
			break
		}
	}
	if n != 10 {
		t.Fatalf("%d rows read before stopping at 10", n)
	}
}

// The rows of a flush are what counting each event and ban straight into
// its rows gives: a reference model over failures and bans of IPv4 and
// IPv6 addresses and prefixes, in several hours and jails, with a locator.
func TestCounterFlushMatchesModel(t *testing.T) {
	type key struct {
		hour       time.Time
		jail, dim  string
		key, label string
	}
	want := map[key][2]int64{}
	count := func(hour time.Time, jail, dim, k, label string, failures, bans int64) {
		x := key{hour, jail, dim, k, label}
		v := want[x]
		v[0] += failures
		v[1] += bans
		want[x] = v
	}
	loc := countryByFirstByte{}
	place := func(p netip.Prefix, hour time.Time, jail string, failures, bans int64) {
		info := loc.Lookup(p.Addr())
		count(hour, jail, store.DimCountry, info.Country, "", failures, bans)
		count(hour, jail, store.DimASN, fmt.Sprint(info.ASN), info.Org, failures, bans)
		count(hour, jail, store.DimPrefix, insight.Network(p).String(), "", failures, bans)
	}
	var c insight.Counter
	jails := []string{"sshd", "postfix", "dovecot"}
	for i := range 5000 {
		at := t0.Add(time.Duration(i%5)*time.Hour + time.Duration(i)*time.Second)
		hour := at.Truncate(time.Hour)
		jail := jails[i%3]
		a := netip.AddrFrom4([4]byte{byte(1 + i%40), byte(i % 7), byte(i >> 4), byte(i)})
		if i%9 == 0 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i % 3), 8: byte(i >> 8), 15: byte(i)})
		}
		n := 1 + i%4
		ev := event.Event{Time: at, Jail: jail, Service: jail, Kind: event.AuthFailure, Addr: a, User: fmt.Sprintf("u%d", i%97)}
		c.Observe(ev, n)
		count(hour, jail, store.DimTotal, "", "", int64(n), 0)
		count(hour, jail, store.DimUser, ev.User, "", int64(n), 0)
		count(hour, jail, store.DimService, jail, "", int64(n), 0)
		count(hour, jail, store.DimKind, ev.Kind.String(), "", int64(n), 0)
		place(event.AddrPrefix(a), hour, jail, int64(n), 0)
		if i%13 == 0 {
			target := event.AddrPrefix(a)
			if i%26 == 0 {
				target = netip.PrefixFrom(a, map[bool]int{true: 24, false: 48}[a.Is4()]).Masked()
			}
			c.Decided([]event.Decision{{Action: event.Ban, Target: target, Start: at, Jail: jail, Scenario: "brute-force"}})
			count(hour, jail, store.DimTotal, "", "", 0, 1)
			count(hour, jail, store.DimScenario, "brute-force", "", 0, 1)
			place(target, hour, jail, 0, 1)
		}
	}
	got := map[key][2]int64{}
	for _, r := range c.Flush(loc) {
		x := key{r.Hour, r.Jail, r.Dim, r.Key, r.Label}
		if _, dup := got[x]; dup {
			t.Fatalf("row %v twice", x)
		}
		got[x] = [2]int64{r.Failures, r.Bans}
	}
	if !reflect.DeepEqual(got, want) {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%v: got %v, want %v", k, got[k], v)
			}
		}
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
}

func TestCounterClipsHostileKeys(t *testing.T) {
	var c insight.Counter
	long := strings.Repeat("é", 100)
	c.Observe(event.Event{Time: t0, Jail: "sshd", Service: "sshd", Kind: event.AuthFailure, Addr: netip.MustParseAddr("192.0.2.1"), User: long}, 2)
	for _, r := range c.Flush(nil) {
		if r.Dim == store.DimUser {
			if len(r.Key) > 64 || !strings.HasPrefix(long, r.Key) || r.Failures != 2 {
				t.Fatalf("user key %q (%d bytes), failures %d", r.Key, len(r.Key), r.Failures)
			}
			return
		}
	}
	t.Fatal("no user row")
}

func TestNetwork(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.7/32":     "198.51.100.0/24",
		"203.0.113.0/24":      "203.0.113.0/24",
		"10.1.0.0/16":         "10.1.0.0/16",
		"2001:db8:1:2::5/128": "2001:db8:1:2::/64",
		"2001:db8::/48":       "2001:db8::/48",
	} {
		if got := insight.Network(netip.MustParsePrefix(in)).String(); got != want {
			t.Errorf("Network(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestReportSectionsFollowData: the trap's sections appear only when it
// caught something.
func TestReportSectionsFollowData(t *testing.T) {
	loc := geoDB(t)
	without := seed(t, loc, "no-captures.db", dataset{events: hostB().events, decisions: hostB().decisions})
	with := seed(t, loc, "captures.db", hostB())
	ctx := context.Background()
	sections := func(src insight.Source) []string {
		r, err := insight.Build(ctx, []insight.Source{src}, insight.Options{}, loc)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range r.Sections() {
			if strings.HasPrefix(s.ID, "trap") {
				ids = append(ids, s.ID)
			}
		}
		return ids
	}
	if got := sections(without); len(got) != 0 {
		t.Fatalf("trap sections without captures: %v", got)
	}
	if got := sections(with); !reflect.DeepEqual(got, []string{"trap_countries", "trap_asns", "trap_accounts", "trap_senders", "trap_domains", "trap_urls", "trap_indicators"}) {
		t.Fatalf("trap sections with a capture: %v", got)
	}
}

func TestCounterCountsBansAndTraps(t *testing.T) {
	var c insight.Counter
	d := banOf(0, "postfix", "192.0.2.9", "trap-spray")
	d.Action = event.Trap
	allow := banOf(0, "sshd", "192.0.2.10", "known-good")
	allow.Action = event.Allow
	c.Decided([]event.Decision{banOf(0, "sshd", "192.0.2.8", "ip-failures"), d, allow})
	got := map[string]int64{}
	for _, r := range c.Flush(nil) {
		if r.Dim == store.DimScenario {
			got[r.Key] += r.Bans
		}
	}
	if len(got) != 2 || got["ip-failures"] != 1 || got["trap-spray"] != 1 {
		t.Fatalf("bans by scenario = %v; want the ban and the trap, not the carve-out", got)
	}
}

// TestCounterKeyedMatchesModel: the total, service, kind and user rows and
// Dropped match a model of the counter's rule (a total always counts,
// another entry only while there is room, until Flush), with events whose
// jail, hour, kind and service change in runs and come back, a bound that
// is reached, and a flush halfway.
func TestCounterKeyedMatchesModel(t *testing.T) {
	type key struct {
		hour           time.Time
		jail, dim, key string
	}
	const limit = 400
	c := insight.Counter{MaxEntries: limit}
	want, room := map[key]int64{}, map[key]bool{}
	var dropped uint64
	add := func(k key, n int64) {
		if _, ok := want[k]; ok || k.dim == store.DimTotal {
			want[k] += n
			return
		}
		if len(room) >= limit {
			dropped++
			return
		}
		room[k] = true
		want[k] = n
	}
	check := func(when string) {
		t.Helper()
		for k := range want {
			if k.dim == "addr" {
				delete(want, k) // counted for room; their rows are checked elsewhere
			}
		}
		got := map[key]int64{}
		for _, r := range c.Flush(nil) {
			switch r.Dim {
			case store.DimTotal, store.DimService, store.DimKind, store.DimUser:
				got[key{r.Hour, r.Jail, r.Dim, r.Key}] = r.Failures
			}
		}
		if !reflect.DeepEqual(got, want) {
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: %+v = %d, want %d", when, k, got[k], v)
				}
			}
			for k, v := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("%s: %+v = %d, not expected", when, k, v)
				}
			}
		}
		if c.Dropped() != dropped {
			t.Errorf("%s: Dropped %d, want %d", when, c.Dropped(), dropped)
		}
		clear(want)
		clear(room)
	}
	jails := []string{"sshd", "postfix", "dovecot"}
	for i := range 3000 {
		if i == 1500 {
			check("first flush")
		}
		hour := t0.Add(time.Duration(i/400%3) * time.Hour)
		ev := event.Event{Time: hour.Add(time.Duration(i) * time.Second), Jail: jails[i/3%3], Kind: event.AuthFailure,
			Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%200)}), User: fmt.Sprintf("u%d", i%37)}
		ev.Service = ev.Jail
		switch {
		case i%17 == 0:
			ev.Service = ""
		case i%13 == 0:
			ev.Service = "other"
		}
		if i%11 < 3 {
			ev.Kind = event.UnknownUser
		}
		n := int64(1 + i%3)
		if i%29 == 0 {
			c.Observe(event.Event{Time: ev.Time, Jail: ev.Jail, Kind: event.AuthSuccess, Addr: ev.Addr}, 1) // not counted
		}
		c.Observe(ev, int(n))
		// The counter's order: total, service, kind, address, user.
		add(key{hour, ev.Jail, store.DimTotal, ""}, n)
		if ev.Service != "" {
			add(key{hour, ev.Jail, store.DimService, ev.Service}, n)
		}
		add(key{hour, ev.Jail, store.DimKind, ev.Kind.String()}, n)
		add(key{hour, ev.Jail, "addr", ev.Addr.String()}, n)
		add(key{hour, ev.Jail, store.DimUser, ev.User}, n)
	}
	check("second flush")
}
