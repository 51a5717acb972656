package insight

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rampart-dev/rampart/internal/store"
)

// Section is one table of a report, in the order reports show them.
type Section struct {
	ID    string // "countries": the CSV section and the JSON key
	Title string // "Countries"
	Head  string // the key column's heading
	Rows  []Row
	dim   string // the store dimension, for naming keys
	// labelHead heads the label column in text ("" when labels name the
	// key, as an AS's organisation does); width is the text's key column
	// (0: 40 characters).
	labelHead string
	width     int
}

// Sections returns the report's tables in order; the trap's come last,
// when there is a trap.
func (r *Report) Sections() []Section {
	ss := []Section{
		{ID: "jails", Title: "Jails", Head: "jail", Rows: r.Jails},
		{ID: "countries", Title: "Countries", Head: "country", Rows: r.Countries, dim: store.DimCountry},
		{ID: "asns", Title: "Autonomous systems", Head: "AS", Rows: r.ASNs, dim: store.DimASN},
		{ID: "prefixes", Title: "Networks", Head: "network", Rows: r.Prefixes},
		{ID: "users", Title: "User names tried", Head: "user", Rows: r.Users},
		{ID: "services", Title: "Services", Head: "service", Rows: r.Services},
		{ID: "kinds", Title: "Kinds of failure", Head: "kind", Rows: r.Kinds},
		{ID: "scenarios", Title: "Scenarios that banned", Head: "scenario", Rows: r.Scenarios},
	}
	if t := r.Trap; t != nil {
		ss = append(ss,
			Section{ID: "trap_countries", Title: "Trap: client countries", Head: "country", Rows: t.Countries, dim: store.DimCountry},
			Section{ID: "trap_asns", Title: "Trap: client networks", Head: "AS", Rows: t.ASNs, dim: store.DimASN},
			Section{ID: "trap_accounts", Title: "Trap: accounts used", Head: "account", Rows: t.Accounts},
			Section{ID: "trap_senders", Title: "Trap: envelope senders", Head: "sender", Rows: t.Senders},
		)
		if t.Domains != nil || t.URLs != nil || t.Indicators != nil {
			ss = append(ss,
				Section{ID: "trap_domains", Title: "Trap: domains the messages carried", Head: "domain", Rows: t.Domains},
				Section{ID: "trap_urls", Title: "Trap: links the messages carried", Head: "link", Rows: t.URLs, width: 72},
				Section{ID: "trap_indicators", Title: "Trap: other indicators", Head: "indicator", Rows: t.Indicators, labelHead: "kind"},
			)
		}
	}
	return ss
}

// Name renders a row's key for people: "(unknown)", "(others)", "AS64500".
func (s Section) Name(row Row) string {
	switch {
	case row.Key == store.OtherKey:
		return "(others)"
	case s.dim == store.DimCountry && row.Key == "",
		s.dim == store.DimASN && (row.Key == "0" || row.Key == ""):
		return "(unknown)"
	case s.dim == store.DimASN:
		return "AS" + row.Key
	case row.Key == "":
		return "(none)"
	}
	return row.Key
}

// column is one number column of a table.
type column struct {
	name  string
	value func(Row) string
}

// columns are the number columns that mean something for the section:
// user names, services and kinds of failure ban nothing by themselves,
// scenarios count only bans, the trap's tables count messages.
func (s Section) columns() []column {
	failures := column{"failures", func(r Row) string { return strconv.FormatInt(r.Failures, 10) }}
	bans := column{"bans", func(r Row) string { return strconv.FormatInt(r.Bans, 10) }}
	messages := column{"messages", failures.value}
	share := column{"share", func(r Row) string { return percent(r.Share) }}
	switch {
	case strings.HasPrefix(s.ID, "trap_"):
		return []column{messages, share}
	case s.ID == "scenarios":
		return []column{bans, share}
	case s.ID == "users" || s.ID == "services" || s.ID == "kinds":
		return []column{failures, share}
	}
	return []column{failures, share, bans}
}

// writeTable writes cells indented by two spaces, two spaces between
// columns: the first left columns left-aligned, the others right-aligned,
// and with textLast the last one left-aligned free text (a bar).
func writeTable(w io.Writer, cells [][]string, left int, textLast bool) {
	widths := map[int]int{}
	for _, line := range cells {
		for i, c := range line {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, line := range cells {
		var b strings.Builder
		b.WriteString("  ")
		for i, c := range line {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			last := i == len(line)-1
			switch {
			case widths[i] == 0:
				continue
			case i < left || (last && textLast):
				b.WriteString(c)
				if !last {
					b.WriteString(pad)
				}
			default:
				b.WriteString(pad + c)
			}
			if !last {
				b.WriteString("  ")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	bw := &errWriter{w: w}
	fmt.Fprintf(bw, "Rampart report: %s, %s", span(r.Since, r.Until), jailName(r.Jail))
	if len(r.Stores) > 1 {
		fmt.Fprintf(bw, " (merged: %s)", strings.Join(r.Stores, ", "))
	}
	fmt.Fprintf(bw, "\n\nfailures %d, bans %d\n", r.Failures, r.Bans)
	for _, s := range r.Sections() {
		if s.ID == "trap_countries" {
			t := r.Trap
			fmt.Fprintf(bw, "\nTrap: %d messages (%s) to %d recipients from %d addresses; none was delivered\n",
				t.Messages, bytesText(t.Bytes), t.Recipients, t.Clients)
		}
		fmt.Fprintf(bw, "\n%s\n", s.Title)
		if len(s.Rows) == 0 {
			fmt.Fprintln(bw, "  (none)")
			continue
		}
		cols := s.columns()
		head := []string{s.Head, s.labelHead}
		for _, c := range cols {
			head = append(head, c.name)
		}
		cells := [][]string{head}
		for _, row := range s.Rows {
			label := row.Label
			if row.Key == store.OtherKey {
				label = ""
			}
			line := []string{clipText(s.Name(row), cmp.Or(s.width, 40)), clipText(label, 40)}
			for _, c := range cols {
				line = append(line, c.value(row))
			}
			cells = append(cells, line)
		}
		writeTable(bw, cells, 2, false)
	}
	r.writeReportsText(bw)
	fmt.Fprintf(bw, "\nFailures and bans by %s\n", r.Step)
	if len(r.Timeline) == 0 {
		fmt.Fprintln(bw, "  (none)")
		return bw.err
	}
	var peak int64
	for _, p := range r.Timeline {
		peak = max(peak, p.Failures)
	}
	layout := "2006-01-02 15:04"
	if r.Step == "day" {
		layout = "2006-01-02"
	}
	cells := [][]string{{r.Step, "failures", "bans", ""}}
	for _, p := range r.Timeline {
		bar := ""
		if peak > 0 {
			bar = strings.Repeat("#", int((p.Failures*30+peak-1)/peak))
		}
		cells = append(cells, []string{p.Time.UTC().Format(layout), strconv.FormatInt(p.Failures, 10), strconv.FormatInt(p.Bans, 10), bar})
	}
	writeTable(bw, cells, 1, true)
	return bw.err
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteCSV writes the report as one table: section, key, label,
// failures, bans, share. The totals are section "total"; the timeline is
// section "timeline" with the step's start (RFC 3339) as key; the trap's
// sections count messages in the failures column, its totals are section
// "trap" (keys messages, bytes, recipients, clients).
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	i := strconv.FormatInt
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 4, 64) }
	cw.Write([]string{"section", "key", "label", "failures", "bans", "share"})
	cw.Write([]string{"total", "", "", i(r.Failures, 10), i(r.Bans, 10), ""})
	for _, s := range r.Sections() {
		for _, row := range s.Rows {
			cw.Write([]string{s.ID, csvSafe(row.Key), csvSafe(row.Label), i(row.Failures, 10), i(row.Bans, 10), f(row.Share)})
		}
	}
	for _, p := range r.Timeline {
		cw.Write([]string{"timeline", p.Time.UTC().Format(time.RFC3339), r.Step, i(p.Failures, 10), i(p.Bans, 10), ""})
	}
	if t := r.Trap; t != nil {
		for _, kv := range []struct {
			k string
			v int64
		}{{"messages", int64(t.Messages)}, {"bytes", t.Bytes}, {"recipients", int64(t.Recipients)}, {"clients", int64(t.Clients)}} {
			cw.Write([]string{"trap", kv.k, "", i(kv.v, 10), "0", ""})
		}
	}
	for _, rep := range r.Reports {
		for _, st := range rep.states() {
			cw.Write([]string{"reports", csvSafe(rep.Name), st.name, strconv.Itoa(st.n), "0", ""})
		}
	}
	for _, rep := range r.Reports {
		for _, t := range rep.Targets {
			cw.Write([]string{"report_targets", csvSafe(t.Target), csvSafe(rep.Name), strconv.Itoa(t.Reports), strconv.Itoa(t.Sent), ""})
		}
	}
	cw.Flush()
	return cw.Error()
}

// state is a count of a reporter's reports in one state.
type state struct {
	name string
	n    int
}

// states are a reporter's counts in the order reports show them; reports
// counts them all.
func (r Reporter) states() []state {
	return []state{{"reports", r.Reports}, {"sent", r.Sent}, {"failed", r.Failed}, {"pending", r.Pending},
		{"review", r.Review}, {"rejected", r.Rejected}, {"dry-run", r.DryRun}}
}

// writeReportsText writes the reports sent: a line per reporter, then
// each reporter's most reported targets.
func (r *Report) writeReportsText(w io.Writer) {
	if len(r.Reports) == 0 {
		return
	}
	fmt.Fprintf(w, "\nReports queued, by their state now\n")
	head := []string{"reporter"}
	for _, st := range (Reporter{}).states() {
		head = append(head, st.name)
	}
	cells := [][]string{head}
	for _, rep := range r.Reports {
		line := []string{clipText(rep.Name, 40)}
		for _, st := range rep.states() {
			line = append(line, strconv.Itoa(st.n))
		}
		cells = append(cells, line)
	}
	writeTable(w, cells, 1, false)
	for _, rep := range r.Reports {
		fmt.Fprintf(w, "\nReports: reported most by %s", clipText(rep.Name, 40))
		if rep.TargetsTotal > len(rep.Targets) {
			fmt.Fprintf(w, " (%d of %d targets)", len(rep.Targets), rep.TargetsTotal)
		}
		fmt.Fprintln(w)
		cells := [][]string{{"target", "kind", "reports", "sent"}}
		for _, t := range rep.Targets {
			cells = append(cells, []string{clipText(t.Target, 72), clipText(t.Kind, 20), strconv.Itoa(t.Reports), strconv.Itoa(t.Sent)})
		}
		writeTable(w, cells, 2, false)
	}
}

// csvSafe keeps a spreadsheet from taking a hostile key (a user name an
// attacker chose) for a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func span(since, until time.Time) string {
	const layout = "2006-01-02 15:04 UTC"
	switch {
	case since.IsZero() && until.IsZero():
		return "all recorded time"
	case until.IsZero():
		return "since " + since.UTC().Format(layout)
	case since.IsZero():
		return "until " + until.UTC().Format(layout)
	}
	return since.UTC().Format(layout) + " to " + until.UTC().Format(layout)
}

func jailName(j string) string {
	if j == "" {
		return "all jails"
	}
	return "jail " + j
}

func percent(x float64) string { return strconv.FormatFloat(100*x, 'f', 1, 64) + "%" }

func bytesText(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// clipText shortens s to n runes for a text column, and keeps control
// characters (from hostile keys) off the terminal.
func clipText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
	rs := []rune(s)
	if len(rs) > n {
		return string(rs[:n-1]) + "…"
	}
	return s
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
